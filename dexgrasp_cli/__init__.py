"""dexgrasp's command line and what it drives: PPO teachers in three layouts (learner/, layouts/),
DAgger students (distill/), evaluation, benchmarks (bench/) and the paper's tables (report/)."""
