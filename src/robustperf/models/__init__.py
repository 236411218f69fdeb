"""robustperf.models."""
