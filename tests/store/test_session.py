"""RunSession: the one owner of a run's life - open (fresh or resumed), meter, finish / fail / interrupt."""

from __future__ import annotations

import logging
import time

import pytest

from robustperf.cost.energy import create_meter
from robustperf.store import CostRecord, Metrics, RunDir, RunSession

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
