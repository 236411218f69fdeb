"""Run records, run directories and the run index."""

from robustperf.store.blocks import CostRecord, Metrics
from robustperf.store.index import collect_rows, load_index, load_index_frame, rebuild_index
from robustperf.store.io import append_jsonl, read_json, read_jsonl, write_json_atomic, write_text_atomic
from robustperf.store.record import RunDir, RunRecord, provenance, utcnow
from robustperf.store.session import RunSession

__all__ = [
    "CostRecord",
    "Metrics",
    "RunDir",
    "RunRecord",
    "RunSession",
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
    "write_text_atomic",
]
