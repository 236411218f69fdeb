"""Run records, run directories and the run index."""

from robustperf.store.index import collect_rows, load_index, load_index_frame, rebuild_index
from robustperf.store.io import append_jsonl, read_json, read_jsonl, write_json_atomic
from robustperf.store.record import RunDir, RunRecord, provenance, utcnow

__all__ = [
    "RunDir",
    "RunRecord",
    "append_jsonl",
    "collect_rows",
    "load_index",
    "load_index_frame",
    "provenance",
    "read_json",
    "read_jsonl",
    "rebuild_index",
    "utcnow",
    "write_json_atomic",
]
