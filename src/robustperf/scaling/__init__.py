"""robustperf.scaling."""
