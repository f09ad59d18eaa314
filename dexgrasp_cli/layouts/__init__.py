"""Where the sims and the learner run: single (one process), disagg (simulator replicas streaming to one
learner) and dp (data parallelism), over torch.distributed."""
