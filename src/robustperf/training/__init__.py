"""robustperf.training."""
