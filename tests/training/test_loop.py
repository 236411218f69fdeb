"""The training loop end to end on digits: run directory, resume after kill -9, corrupt checkpoints,
NaN -> failed, idempotence, load_run_model."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from robustperf.config import RunConfig
from robustperf.store import RunDir
from robustperf.store import checkpoint as ckpt
from robustperf.training import TrainEvent, load_run_model, train

BASE = {
    "data.dataset": "digits",
    "data.n_train": 256,
    "data.batch_size": 32,
    "model.name": "tiny_cnn",
    "model.kwargs": {"width": 8},
    "method.attack.eps": 0.1,
    "method.attack.step_size": 0.04,
    "method.attack.n_steps": 2,
    "optim.epochs": 2,
    "optim.lr": 0.05,
    "optim.warmup_epochs": 0.5,
    "eval.n_examples": 64,
    "eval.attack.n_steps": 3,
    "runtime.device": "cpu",
    "runtime.log_every_n_steps": 3,
    "runtime.progress": False,
    "cost.energy_meter": "fake",
}


def make_cfg(**overrides: object) -> RunConfig:
    return RunConfig().with_overrides({**BASE, **{k.replace("__", "."): v for k, v in overrides.items()}})


class Stop(BaseException):
    """Stands in for a crash in-process (BaseException: the loop must not record it as a failure)."""


def stop_at(step: int):
    def callback(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == step:
            raise Stop

    return callback


def weights(rd: RunDir, name: str = ckpt.LAST) -> dict[str, torch.Tensor]:
    return ckpt.load_checkpoint(rd.checkpoints / name)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def train_rows(rd: RunDir) -> list[dict]:
    drop = {"seconds", "eval_seconds"}
    return [{k: v for k, v in r.items() if k not in drop} for r in rd.read_metrics() if r["kind"] != "event"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> RunDir:
    """An uninterrupted run of make_cfg(optim.ema_decay=0.9) - the resume tests compare against it."""
    return train(make_cfg(optim__ema_decay=0.9), tmp_path_factory.mktemp("ref"))


def test_run_directory_contents(reference: RunDir) -> None:
    rd = reference
    cfg = make_cfg(optim__ema_decay=0.9)
    assert rd.path.name == cfg.run_id
    assert json.loads(rd.config_path.read_text()) == cfg.resolved()
    rec = rd.read_record()
    assert rec.status == "finished" and rec.failure_reason is None and rec.ended_at
    for key in ("epoch", "samples_seen", "clean_acc", "robust_acc", "adv_loss", "clean_loss", "train_loss", "n_params"):
        assert key in rec.final and key in rec.best, key
    assert rec.final["samples_seen"] == 2 * 256 and rec.final["epoch"] == 1
    assert 0 <= rec.final["robust_acc"] <= rec.final["clean_acc"] <= 1
    assert rec.final["adv_loss"] >= rec.final["clean_loss"]  # CE + 5 * KL, KL >= 0
    assert rec.cost["train_flops"] > 0 and rec.cost["energy_source"] == "fake" and rec.cost["energy_joules"] > 0
    assert rec.cost["train_flops"] == pytest.approx(rec.cost["flops_per_sample"] * 512)
    rows = rd.read_metrics()
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [0, 1]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [3, 6, 8, 9, 12, 15, 16]
    assert {p.name for p in rd.checkpoints.iterdir()} >= {"last.pt", "last.prev.pt", "best.pt"}


def test_load_run_model_gives_the_evaluated_weights(reference: RunDir) -> None:
    from robustperf.data import build_data, eval_tensors

    model, cfg = load_run_model(reference, which="best")
    assert cfg == make_cfg(optim__ema_decay=0.9) and not model.training
    bundle = build_data(cfg.data, seed=cfg.runtime.seed)
    x, y = eval_tensors(bundle.test, cfg.eval.n_examples, seed=0)
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(reference.read_record().best["clean_acc"])
    last, _ = load_run_model(reference, which="last")
    ema = ckpt.load_checkpoint(reference.checkpoints / ckpt.LAST)["ema"]["module"]
    assert_same_weights(last.state_dict(), ema)  # EMA weights are the ones served


def test_finished_run_is_returned_untouched(reference: RunDir) -> None:
    before = reference.result_path.stat().st_mtime_ns
    again = train(make_cfg(optim__ema_decay=0.9), reference.path.parent)
    assert again.path == reference.path and reference.result_path.stat().st_mtime_ns == before


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from robustperf.config import RunConfig
    from robustperf.training import train
    cfg = RunConfig.model_validate_json(sys.argv[1])
    def callback(event):
        if event.kind == "step" and event.step == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
    train(cfg, sys.argv[2], callback=callback, checkpoint_every_n_steps=3)
    """
)


def test_resume_after_sigkill_equals_uninterrupted_run(reference: RunDir, tmp_path: Path) -> None:
    cfg = make_cfg(optim__ema_decay=0.9)
    # the same intra-op thread count as this process, which trained the reference: float sums split
    # over a different number of threads differ in the last bit, and the test compares bit for bit
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, cfg.model_dump_json(), str(tmp_path), "11"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]  # killed mid-epoch 1 (8 steps per epoch), last.pt at step 9
    rd = RunDir.for_run(tmp_path, cfg.run_id)
    assert rd.read_record().status == "running"
    assert ckpt.load_latest(rd.checkpoints)["progress"]["step"] == 9
    resumed = train(cfg, tmp_path)
    assert resumed.read_record().status == "finished"
    assert_same_weights(weights(resumed), weights(reference))
    state = ckpt.load_checkpoint(resumed.checkpoints / ckpt.LAST)
    assert_same_weights(state["ema"]["module"], ckpt.load_checkpoint(reference.checkpoints / ckpt.LAST)["ema"]["module"])
    assert train_rows(resumed) == train_rows(reference)  # rows logged after step 9 were dropped and redone
    assert resumed.read_record().final == reference.read_record().final


TERM_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from robustperf.config import RunConfig
    from robustperf.training import TrainingInterrupted, train
    cfg = RunConfig.model_validate_json(sys.argv[1])
    def callback(event):
        if event.kind == "step" and event.step == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGTERM)  # what scancel / a preempting scheduler sends
    try:
        train(cfg, sys.argv[2], callback=callback)
    except TrainingInterrupted as exc:
        print(exc)
        sys.exit(128 + exc.signum)
    """
)


def test_sigterm_checkpoints_at_the_current_step_and_resume_equals_uninterrupted_run(
    reference: RunDir, tmp_path: Path
) -> None:
    cfg = make_cfg(optim__ema_decay=0.9)  # epoch checkpoints only: without the signal path, step 8 is the last
    # the same intra-op thread count as this process, which trained the reference: float sums split
    # over a different number of threads differ in the last bit, and the test compares bit for bit
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(
        [sys.executable, "-c", TERM_SCRIPT, cfg.model_dump_json(), str(tmp_path), "11"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert "SIGTERM received: checkpoint written at step 11" in proc.stdout
    rd = RunDir.for_run(tmp_path, cfg.run_id)
    rec = rd.read_record()
    assert rec.status == "interrupted" and "step 11" in rec.failure_reason
    assert ckpt.load_latest(rd.checkpoints)["progress"]["step"] == 11
    assert any(r.get("event") == "interrupted" and r["signal"] == "SIGTERM" for r in rd.read_metrics())
    before = signal.getsignal(signal.SIGTERM)
    resumed = train(cfg, tmp_path)
    assert signal.getsignal(signal.SIGTERM) is before  # the run's handler is removed when it ends
    assert resumed.read_record().status == "finished"
    assert_same_weights(weights(resumed), weights(reference))
    assert train_rows(resumed) == train_rows(reference)


@pytest.mark.parametrize("stop", [8, 16])
def test_sigterm_at_an_epoch_end_or_the_last_step_loses_no_evaluation(reference: RunDir, tmp_path: Path,
                                                                       stop: int) -> None:
    from robustperf.training import TrainingInterrupted

    def term_at(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == stop:
            os.kill(os.getpid(), signal.SIGTERM)

    cfg = make_cfg(optim__ema_decay=0.9)
    # the end of epoch 0 or of the run: the signal stops that epoch's evaluation before its first batch, the
    # checkpoint holds the epoch's last step, and the resumed run evaluates the epoch again
    with pytest.raises(TrainingInterrupted, match=f"at step {stop}"):
        train(cfg, tmp_path, callback=term_at)
    rd = RunDir.for_run(tmp_path, cfg.run_id)
    assert [r["epoch"] for r in rd.read_metrics() if r["kind"] == "eval"] == ([] if stop == 8 else [0])
    resumed = train(cfg, tmp_path)
    assert resumed.read_record().status == "finished"
    assert_same_weights(weights(rd), weights(reference))
    assert train_rows(rd) == train_rows(reference)
    assert resumed.read_record().final == reference.read_record().final


def test_resume_with_awp_trades_across_epoch_boundary(tmp_path: Path) -> None:
    cfg = make_cfg(method__name="trades", method__awp={"gamma": 0.01, "warmup_epochs": 1},
                   runtime__checkpoint_every_n_epochs=1)
    full = train(cfg, tmp_path / "full")
    with pytest.raises(Stop):
        train(cfg, tmp_path / "cut", callback=stop_at(10))  # last.pt is the end of epoch 0 (step 8)
    resumed = train(cfg, tmp_path / "cut")
    assert_same_weights(weights(resumed), weights(full))
    assert train_rows(resumed) == train_rows(full)


def test_corrupt_last_checkpoint_falls_back_to_previous(reference: RunDir, tmp_path: Path, caplog) -> None:
    cfg = make_cfg(optim__ema_decay=0.9)
    with pytest.raises(Stop):
        train(cfg, tmp_path, callback=stop_at(13), checkpoint_every_n_steps=3)
    rd = RunDir.for_run(tmp_path, cfg.run_id)
    last = rd.checkpoints / ckpt.LAST
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    with caplog.at_level(logging.ERROR):
        resumed = train(cfg, tmp_path)
    assert "corrupt" in caplog.text and "falling back" in caplog.text
    assert_same_weights(weights(resumed), weights(reference))


def test_ctrl_c_marks_the_run_interrupted_not_failed_and_it_resumes(reference: RunDir, tmp_path: Path) -> None:
    cfg = make_cfg(optim__ema_decay=0.9)

    def ctrl_c_at(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path, callback=ctrl_c_at, checkpoint_every_n_steps=3)
    rd = RunDir.for_run(tmp_path, cfg.run_id)
    record = rd.read_record()
    assert record.status == "interrupted" and "Ctrl-C" in record.failure_reason
    assert rd.read_metrics()[-1] == {**rd.read_metrics()[-1], "event": "interrupted", "step": 7, "signal": "SIGINT"}
    resumed = train(cfg, tmp_path)  # from last.pt at step 6
    assert resumed.read_record().status == "finished"
    assert_same_weights(weights(resumed), weights(reference))


def test_nan_loss_marks_run_failed_and_keeps_what_was_written(tmp_path: Path) -> None:
    cfg = make_cfg(optim__lr=1e30, optim__warmup_epochs=0, optim__epochs=3)
    rd = train(cfg, tmp_path)
    rec = rd.read_record()
    assert rec.status == "failed"
    assert "non-finite training loss" in rec.failure_reason and "optim.lr" in rec.failure_reason
    assert rd.config_path.exists() and rd.read_metrics()[-1]["event"] == "failed"
    assert not rd.is_finished()


def test_cli_train_prints_run_dir_and_fails_non_zero_on_nan(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(make_cfg(optim__epochs=1).resolved()))
    runner = CliRunner()
    ok = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert ok.exit_code == 0, ok.output
    assert "run dir:" in ok.output and "robust_acc" in ok.output
    bad = runner.invoke(app, ["train", str(config), "--set", "optim.lr=1e30", "--runs-dir", str(tmp_path / "runs")])
    assert bad.exit_code == 1 and "non-finite" in bad.output
    typo = runner.invoke(app, ["train", str(config), "--set", "optim.lrr=1", "--runs-dir", str(tmp_path / "runs")])
    assert typo.exit_code == 2 and "optim.lrr" in typo.output


def test_samples_budget_overrides_epochs(tmp_path: Path) -> None:
    cfg = make_cfg(optim__samples=300, optim__epochs=50, eval__every_n_epochs=5)
    events: list[TrainEvent] = []
    rd = train(cfg, tmp_path, callback=events.append)
    rec = rd.read_record()
    assert rec.status == "finished"
    assert events[0].total_steps == 10  # ceil(300 / 32)
    assert rec.final["samples_seen"] == 320 and rec.final["epoch"] == 1  # second epoch cut short, then evaluated
    assert [e.kind for e in events].count("eval") == 1


def test_bf16_channels_last_deterministic_on_cpu(tmp_path: Path) -> None:
    cfg = make_cfg(runtime__precision="bf16", runtime__channels_last=True, runtime__deterministic=True,
                   optim__epochs=1, optim__grad_clip=1.0, method__name="mart")
    rec = train(cfg, tmp_path).read_record()
    assert rec.status == "finished" and rec.final["train_loss"] > 0
