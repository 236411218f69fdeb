"""RunSession: the one owner of a run's life - open (fresh or resumed), meter, finish / fail / interrupt."""

from __future__ import annotations

import ast
import json
import logging
import time
from pathlib import Path

import pytest

import robustperf
from robustperf.cost.energy import create_meter
from robustperf.store import CostRecord, Metrics, RunDir, RunSession, repair
from robustperf.store.record import RunStatus
from robustperf.store.session import CTRL_C

CONFIG = {"model": {"name": "tiny_cnn"}, "seed": 0}


def test_fresh_open_clears_an_earlier_attempts_metrics_and_marks_running(tmp_path) -> None:
    rd = RunDir(tmp_path / "r")
    rd.path.mkdir()
    rd.append_metrics({"kind": "train", "step": 3})
    session = RunSession.open(rd, CONFIG, kind="llm", provenance_extra={"seed": 0})
    record = rd.read_record()
    assert rd.read_config() == CONFIG and rd.read_metrics() == []
    assert record.status == "running" and record.kind == "llm" and record.started_at is not None
    assert record.provenance["seed"] == 0 and record.provenance["resumed"] is False and not session.resumed


def test_resume_cuts_metrics_to_the_checkpoint_and_keeps_the_start_time(tmp_path, caplog) -> None:
    rd = RunDir(tmp_path / "r")
    RunSession.open(rd, CONFIG)
    rd.update_record(started_at="t0", status="interrupted", failure_reason="SIGTERM")
    for step in (2, 4, 6, 8):
        rd.append_metrics({"kind": "train", "step": step})
    with caplog.at_level(logging.WARNING):
        session = RunSession.open(rd, CONFIG, resumed_at_step=4)
    assert "dropped 2 metrics rows logged after step 4" in caplog.text
    assert [r["step"] for r in rd.read_metrics()] == [2, 4, 4]  # the last row: the "resumed" event
    assert rd.read_metrics()[-1]["event"] == "resumed"
    record = rd.read_record()
    assert record.started_at == "t0" and record.status == "running" and record.failure_reason is None
    assert session.resumed and session.truncate_metrics(4) == 0


def test_finish_freezes_typed_blocks_and_meters_earlier_attempts_too(tmp_path) -> None:
    rd = RunDir(tmp_path / "r")
    session = RunSession.open(rd, CONFIG)
    session.start_meter(create_meter("fake"), prior_seconds=10.0, prior_joules=1000.0)
    time.sleep(0.01)
    seconds, joules = session.measured()
    assert seconds > 10.0 and joules > 1000.0  # the fake meter draws 300 W
    reading = session.stop_meter()
    assert reading.source == "fake" and reading.seconds >= seconds and reading.joules >= joules
    session.update(final={"clean_acc": 0.5, "epoch": 0})
    session.finish(final={"clean_acc": 0.9, "asr_by_round": [0.5, 0.2]}, best={"robust_acc": 0.4},
                   cost={"seconds": reading.seconds, "energy_joules": reading.joules, "usd_gpu_hours": None,
                         "attack_flops": 7.0})
    record = rd.read_record()
    assert record.status == "finished" and record.ended_at is not None
    assert isinstance(record.final, Metrics) and record.final.clean_acc == 0.9 and record.final.epoch == 0
    assert record.final["asr_by_round"] == [0.5, 0.2]  # keys a block does not name are kept
    assert isinstance(record.cost, CostRecord) and record.cost.seconds == reading.seconds
    assert "usd_gpu_hours" in record.cost and record.cost["usd_gpu_hours"] is None  # a null stays a null
    assert record.cost.extra == {"attack_flops": 7.0}
    with pytest.raises(TypeError):
        record.cost["seconds"] = 1.0  # type: ignore[index]  # blocks are frozen


def test_fail_and_interrupt_record_the_reason_and_an_event(tmp_path) -> None:
    rd = RunDir(tmp_path / "r")
    session = RunSession.open(rd, CONFIG)
    with pytest.raises(ZeroDivisionError), session.failing_on_error():
        1 / 0  # noqa: B018
    assert rd.read_record().status == "failed" and rd.read_record().failure_reason.startswith("ZeroDivisionError")
    session = RunSession.open(rd, CONFIG, resumed_at_step=0)
    session.interrupt("SIGTERM at step 3", step=3, signal_name="SIGTERM")
    assert rd.read_record().status == "interrupted"
    assert rd.read_metrics()[-1] == {**rd.read_metrics()[-1], "event": "interrupted", "step": 3}
    session.fail("NaN loss", step=4, trace="Traceback ...")
    assert (rd.path / "failure.txt").read_text() == "Traceback ..."
    assert rd.read_metrics()[-1]["event"] == "failed"


def test_record_failure_of_a_run_that_never_started(tmp_path) -> None:
    rd = RunDir(tmp_path / "never")
    RunSession.record_failure(rd, CONFIG, "ValueError: bad data", "trace")
    assert rd.read_config() == CONFIG and rd.read_record().status == "failed"
    assert (rd.path / "failure.txt").read_text() == "trace"


def test_non_main_ranks_write_nothing(tmp_path) -> None:
    rd = RunDir(tmp_path / "r")
    session = RunSession.open(rd, CONFIG, is_main=False)
    session.log({"step": 1})
    session.update(final={"clean_acc": 1.0})
    session.finish(final={"clean_acc": 1.0})
    session.fail("x")
    assert not rd.path.exists()


def test_ctrl_c_inside_failing_on_error_is_an_interrupt_not_a_failure(tmp_path) -> None:
    rd = RunDir(tmp_path / "r")
    session = RunSession.open(rd, CONFIG)
    with pytest.raises(KeyboardInterrupt), session.failing_on_error():
        raise KeyboardInterrupt
    record = rd.read_record()
    assert record.status is RunStatus.INTERRUPTED and record.failure_reason == CTRL_C
    with pytest.raises(ValueError, match="boom"), RunSession.open(rd, CONFIG).failing_on_error():
        raise ValueError("boom")
    assert rd.read_record().status is RunStatus.FAILED and rd.read_record().failure_reason == "ValueError: boom"


def test_statuses_are_an_enum_stored_as_the_same_strings(tmp_path) -> None:
    rd = RunDir(tmp_path / "r")
    RunSession.open(rd, CONFIG).finish(final={"clean_acc": 0.5})
    assert json.loads(rd.result_path.read_text())["status"] == "finished"  # result.json as before
    record = rd.read_record()
    assert record.status is RunStatus.FINISHED and record.status == "finished" and f"{record.status}" == "finished"
    assert rd.is_finished()
    rd.result_path.write_text(rd.result_path.read_text().replace('"finished"', '"done"'))
    with pytest.raises(ValueError, match="status 'done' is not one of"):
        rd.read_record()


def test_repair_writes_its_statuses_through_the_session(tmp_path) -> None:
    rd = RunDir(tmp_path / "r")
    RunSession.record_rebuilt(rd, "rebuilt", final={"clean_acc": 0.5}, best={"robust_acc": 0.25})
    record = rd.read_record()
    assert (record.status, record.failure_reason, record.final.clean_acc, record.best.robust_acc) == (
        RunStatus.INTERRUPTED, "rebuilt", 0.5, 0.25)
    RunSession.record_corrupt(rd, "no checkpoint")
    assert json.loads(rd.result_path.read_text())["status"] == "corrupt"


def _status_writes(path: Path) -> list[int]:
    """Lines of ``path`` that write a run record (``write_record``) or a status (``update_record(status=...)``,
    ``RunRecord(..., status=...)``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            sets_status = any(k.arg == "status" for k in node.keywords)
            if name == "write_record" or (name in ("update_record", "RunRecord") and sets_status):
                out.append(node.lineno)
    return out


def test_nothing_outside_the_session_writes_a_status() -> None:
    src = Path(robustperf.__file__).parent
    writers = {p.relative_to(src).as_posix(): lines for p in sorted(src.rglob("*.py")) if (lines := _status_writes(p))}
    assert set(writers) == {"store/session.py", "store/record.py"}, writers  # record.py: RunDir.update_record itself
    assert _status_writes(Path(repair.__file__)) == []
