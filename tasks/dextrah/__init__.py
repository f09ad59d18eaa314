"""The grasp-and-lift task as batched torch logic: env, actions, rewards, ADR, cameras, the scripted grasp."""
