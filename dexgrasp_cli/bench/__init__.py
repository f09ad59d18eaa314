"""Benchmarks that print figures: env throughput, training throughput per layout, and memory per role (the paper's Table I)."""
