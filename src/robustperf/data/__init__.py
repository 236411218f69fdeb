"""robustperf.data."""
