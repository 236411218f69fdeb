"""robustperf.attacks."""
