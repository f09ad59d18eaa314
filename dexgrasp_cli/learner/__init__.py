"""PPO learner pieces on top of rl-games 1.6.5."""
