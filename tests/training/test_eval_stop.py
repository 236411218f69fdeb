"""Issue 28 item 6: a stop signal during a long per-epoch evaluation stops it between batches, checkpoints the
training state and exits within seconds; the resumed run evaluates again and ends exactly as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from robustperf.config import RunConfig
from robustperf.store import RunDir
from robustperf.store import checkpoint as ckpt
from robustperf.training import train
from robustperf.training.signals import STOP_SIGNALS, StopRequest, stop_requested

# a long evaluation (12 batches of PGD-120) after a short training (2 epochs, evaluated at the end only)
LONG_EVAL = {
    "data.dataset": "digits", "data.n_train": 128, "data.batch_size": 32, "data.eval_batch_size": 8,
    "model.name": "tiny_cnn", "model.kwargs": {"width": 8}, "method.attack.eps": 0.1,
    "method.attack.step_size": 0.04, "method.attack.n_steps": 2, "optim.epochs": 2, "optim.lr": 0.05,
    "eval.n_examples": 96, "eval.attack.n_steps": 120, "eval.every_n_epochs": 2, "runtime.device": "cpu",
    "runtime.progress": False, "cost.energy_meter": "fake", "runtime.log_every_n_steps": 4,
}

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    from robustperf.config import RunConfig
    from robustperf.training import TrainingInterrupted, train
    cfg = RunConfig.model_validate_json(sys.argv[1])
    def fire():
        with open(sys.argv[3], "w") as f:
            f.write(repr(time.time()))
        os.kill(os.getpid(), int(sys.argv[4]))
    def callback(event):  # 0.5 s into the evaluation that follows the last step
        if event.kind == "step" and event.step == event.total_steps:
            threading.Timer(0.5, fire).start()
    try:
        train(cfg, sys.argv[2], callback=callback)
    except TrainingInterrupted as exc:
        print(exc)
        sys.exit(128 + exc.signum)
    """
)


def test_every_scheduler_warning_signal_is_caught() -> None:
    assert set(STOP_SIGNALS) == {signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP}
    assert stop_requested() is None
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGUSR2)  # submitit's timeout / preemption signal
        assert stop.signum == signal.SIGUSR2 and stop_requested() == signal.SIGUSR2
    assert stop_requested() is None


@pytest.mark.parametrize("signum", [signal.SIGTERM])
def test_signal_during_a_long_evaluation_exits_within_seconds_and_resumes_identically(
        tmp_path: Path, signum: int) -> None:
    cfg = RunConfig().with_overrides(LONG_EVAL)
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # bitwise: same thread count
    fired = tmp_path / "fired"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, cfg.model_dump_json(), str(tmp_path / "cut"), str(fired),
                           str(int(signum))], env=env, capture_output=True, text=True, timeout=300)
    ended = time.time()
    assert proc.returncode == 128 + signum, proc.stdout[-2000:] + proc.stderr[-2000:]
    exit_seconds = ended - float(fired.read_text())
    assert exit_seconds < 10, exit_seconds  # process start-up excluded: the signal is sent from inside
    cut = RunDir.for_run(tmp_path / "cut", cfg.run_id)
    assert cut.read_record().status == "interrupted"
    assert not [r for r in cut.read_metrics() if r["kind"] == "eval"]  # nothing of the cut evaluation kept
    assert ckpt.load_latest(cut.checkpoints)["progress"]["step"] == 8  # the run's last step

    resumed = train(cfg, tmp_path / "cut")
    reference = train(cfg, tmp_path / "ref")
    a, b = ckpt.load_checkpoint(resumed.checkpoints / ckpt.LAST), ckpt.load_checkpoint(reference.checkpoints / ckpt.LAST)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert resumed.read_record().status == "finished"
    assert resumed.read_record().final == reference.read_record().final  # the rerun evaluation agrees
    print(f"{signal.Signals(signum).name}: exited {exit_seconds:.2f} s after the signal")  # noqa: T201
