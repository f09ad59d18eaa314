"""dexgrasp distill: DAgger from a teacher into a stereo-RGB or depth student."""
