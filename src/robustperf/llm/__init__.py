"""robustperf.llm."""
