"""``dexgrasp report``: run folders gathered into the paper's Table II (teachers' ADR and success over
seeds) and curves of Fig. 5's shape. It reads config.yaml and metrics.jsonl only, never a checkpoint,
so it answers in a moment, even over runs that are still being written."""
