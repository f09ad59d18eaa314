"""One module per subcommand: each validates its input, builds the settings and calls a runner.

The heavy modules (torch, warp, the simulator) are imported inside the commands, after every
check, so that help and bad-input errors answer at once."""
