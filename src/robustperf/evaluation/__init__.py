"""robustperf.evaluation."""
