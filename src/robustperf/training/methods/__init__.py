"""robustperf.training.methods."""
