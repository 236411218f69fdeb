"""robustperf.sweep."""
