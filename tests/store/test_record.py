"""Run store: atomic JSON, torn JSONL lines, RunRecord round-trip, RunDir updates and the index."""

from __future__ import annotations

import json
import math

from robustperf.store import RunDir, RunRecord, append_jsonl, load_index, read_jsonl, rebuild_index, write_json_atomic


def test_record_round_trips_through_json(tmp_path) -> None:
    rec = RunRecord(run_id="r1", status="finished", final={"clean_acc": 0.9, "robust_acc": 0.5},
                    cost={"energy_kwh": 1.5, "constants": {"pue": {"value": 1.58, "source": "x"}}},
                    provenance={"seed": 0}, started_at="t0", ended_at="t1")
    rd = RunDir(tmp_path / "r1")
    rd.write_record(rec)
    assert rd.read_record() == rec
    assert RunRecord.from_dict({**rec.to_dict(), "unknown": 1}) == rec


def test_write_json_atomic_stores_nonfinite_as_null(tmp_path) -> None:
    path = tmp_path / "a.json"
    write_json_atomic(path, {"x": math.nan, "y": [1.0, math.inf], "z": 2})
    assert json.loads(path.read_text()) == {"x": None, "y": [1.0, None], "z": 2}
    assert not [p for p in tmp_path.iterdir() if p.name != "a.json"]  # no temp file left behind


def test_torn_jsonl_line_is_skipped(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"step": 1})
    append_jsonl(path, {"step": 2})
    with open(path, "a") as f:
        f.write('{"step": 3, "lo')  # killed mid-write
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]


def test_update_record_merges_sections(tmp_path) -> None:
    rd = RunDir(tmp_path / "r2")
    rd.write_config({"model": {"name": "tiny_cnn"}})
    rd.update_record(status="running", final={"clean_acc": 0.5})
    rec = rd.update_record(final={"robust_acc": 0.2})
    assert rec.final == {"clean_acc": 0.5, "robust_acc": 0.2}
    assert not rd.is_finished()
    rd.update_record(status="finished")
    assert rd.is_finished()


def test_index_rebuilt_from_directories(tmp_path) -> None:
    for i, status in enumerate(["finished", "failed"]):
        rd = RunDir(tmp_path / f"run{i}")
        rd.write_config({"model": {"name": f"m{i}"}, "method": {"name": "pgd_at"}})
        rd.update_record(status=status, final={"robust_acc": 0.1 * i}, cost={"energy_kwh": 2.0})
    RunDir(tmp_path / "pending").write_config({"model": {"name": "x"}})
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    rebuild_index(tmp_path)
    rows = {r["run_id"]: r for r in load_index(tmp_path)}
    assert rows["run0"]["status"] == "finished" and rows["run1"]["status"] == "failed"
    assert rows["run1"]["final.robust_acc"] == 0.1 and rows["run0"]["cost.energy_kwh"] == 2.0
    assert rows["run0"]["config.model.name"] == "m0"
    assert rows["pending"]["status"] == "pending"
    assert rows["broken"]["status"] == "corrupt"
