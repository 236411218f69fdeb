"""robustperf.report."""
