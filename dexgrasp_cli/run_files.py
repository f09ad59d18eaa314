"""The names of a run folder's files, shared by the runs that write them and the report that reads
them (a module without torch, so that report answers at once)."""

from __future__ import annotations

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.pt"
