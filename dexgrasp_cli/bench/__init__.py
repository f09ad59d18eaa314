"""Benchmarks that print figures: env throughput now; GPU memory (the paper's Table I) later."""
