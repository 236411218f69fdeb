"""Live logging from the `tracking:` block: every tracker gets the numbers metrics.jsonl gets; a failing
tracker is logged and skipped and the run still finishes; off by default."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tracking_config import SHORT

from robustperf.config import RunConfig, config_from_dict
from robustperf.store import RunDir
from robustperf.training import train


def _losses(rd: RunDir) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in rd.read_metrics() if r.get("kind") == "train"]


def test_off_by_default_and_not_in_the_run_id() -> None:
    cfg = config_from_dict(SHORT)
    assert cfg.tracking.mlflow is None and cfg.tracking.tensorboard is None and cfg.tracking.wandb is None
    tracked = config_from_dict({**SHORT, "tracking": {"tensorboard": {"dir": "tb"}}})
    assert tracked.run_id == cfg.run_id  # where a run is logged is not what the run is


def test_live_logging_to_all_three_trackers(tmp_path: Path) -> None:
    for name in ("mlflow", "tensorboard", "wandb"):
        pytest.importorskip(name, reason=f"pip install 'robustperf[{name}]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from wandb_records import read_offline_run

    from robustperf.tracking.mlflow_sink import client
    from robustperf.tracking.wandb_sink import offline_dirs

    uri = f"file:{tmp_path / 'mlruns'}"
    cfg = config_from_dict({**SHORT, "tracking": {"mlflow": {"uri": uri, "experiment": "live"},
                                                  "tensorboard": {"dir": str(tmp_path / "tb")},
                                                  "wandb": {"dir": str(tmp_path / "wb"), "project": "live"}}})
    rd = train(cfg, tmp_path / "runs")
    assert rd.read_record().status == "finished"
    want = _losses(rd)
    assert [s for s, _ in want] == [1, 2, 3, 4]

    mlf = client(uri)
    (run,) = mlf.search_runs([mlf.get_experiment_by_name("live").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["model.name"] == "tiny_cnn"
    got = sorted((m.step, m.value) for m in mlf.get_metric_history(run.info.run_id, "train/loss"))
    assert [s for s, _ in got] == [s for s, _ in want] and [v for _, v in got] == pytest.approx([v for _, v in want])
    assert run.data.metrics["eval/robust_acc"] == pytest.approx(rd.read_record().final["robust_acc"])
    assert run.data.metrics["cost/train_flops"] == pytest.approx(rd.read_record().cost["train_flops"])

    acc = EventAccumulator(str(tmp_path / "tb" / rd.run_id))
    acc.Reload()
    tb = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert [s for s, _ in tb] == [s for s, _ in want] and [v for _, v in tb] == pytest.approx([v for _, v in want])

    (folder,) = offline_dirs(tmp_path / "wb", rd.run_id)
    wb = read_offline_run(folder)
    assert [s for s, _ in wb["history"]["train/loss"]] == [s for s, _ in want]
    assert [v for _, v in wb["history"]["train/loss"]] == pytest.approx([v for _, v in want])
    assert wb["summary"]["cost/train_flops"] == pytest.approx(rd.read_record().cost["train_flops"])


def test_a_failing_tracker_is_logged_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("tensorboard", reason="pip install 'robustperf[tensorboard]'")
    from robustperf.tracking import tensorboard_sink

    def broken_log(self, values, step):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(tensorboard_sink.TensorBoardLive, "log", broken_log)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where MLflow wants a folder")
    cfg: RunConfig = config_from_dict({**SHORT, "tracking": {"mlflow": {"uri": f"file:{blocker}/mlruns"},
                                                             "tensorboard": {"dir": str(tmp_path / "tb")}}})
    with caplog.at_level(logging.WARNING, logger="robustperf.tracking.live"):
        rd = train(cfg, tmp_path / "runs")
    assert rd.read_record().status == "finished"
    assert len(_losses(rd)) == 4  # the run store is complete
    messages = [r.getMessage() for r in caplog.records]
    assert any("tracker mlflow could not start" in m for m in messages), messages
    assert sum("tracker tensorboard failed to log" in m and "disk full" in m for m in messages) == 1  # once


class _SlowSink:
    name = "slow"

    def __init__(self) -> None:
        self.rows: list[tuple[dict[str, float], int]] = []
        self.closed: str | None = None

    def log(self, values: dict[str, float], step: int) -> None:
        import time

        time.sleep(0.05)  # a tracker writing to a slow disk or a busy service
        self.rows.append((values, step))

    def close(self, status: str) -> None:
        self.closed = status


def test_the_step_does_not_wait_for_a_slow_tracker_and_close_flushes_every_row() -> None:
    import time

    from robustperf.tracking.live import LiveTracking

    sink = _SlowSink()
    tracking = LiveTracking([sink])
    t0 = time.perf_counter()
    for step in range(1, 21):
        tracking.log_row({"kind": "train", "step": step, "loss": 1.0 / step, "note": "text is not a metric"})
    queued = time.perf_counter() - t0
    assert queued < 0.5  # 20 rows x 50 ms inline would be 1 s
    tracking.close("finished")
    assert [s for _, s in sink.rows] == list(range(1, 21)) and sink.closed == "finished"
    assert sink.rows[1][0] == {"train/loss": 0.5}
