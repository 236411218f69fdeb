"""Fault table for issue 23: stop signals, kills and evaluation-time signals against one training run.

Each trial trains a run in a child process, stops it (a scheduler's warning signal at a given step or
during the per-epoch evaluation, or SIGKILL where no warning comes), resumes it with the same command in a
fresh process, and compares the final weights with an uninterrupted run's. Columns: the step the stop
arrived at, the step the resume started from, steps lost (trained before the stop but not in the
checkpoint: trained again), whether an evaluation was cut and run again, and weights identical (bitwise).

    python benchmarks/fault_trials.py [--out benchmarks/results/fault_table.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CFG = {
    "data.dataset": "digits", "data.n_train": 256, "data.batch_size": 32, "data.eval_batch_size": 8,
    "model.name": "tiny_cnn", "model.kwargs": {"width": 8}, "method.attack.eps": 0.1,
    "method.attack.step_size": 0.04, "method.attack.n_steps": 2, "optim.epochs": 2, "optim.lr": 0.05,
    "eval.n_examples": 64, "eval.attack.n_steps": 60, "runtime.device": "cpu", "runtime.progress": False,
    "cost.energy_meter": "fake", "runtime.log_every_n_steps": 2, "runtime.checkpoint_every_n_steps": 4,
}
# (name, signal, trigger): trigger "step:K" sends at training step K, "eval:E" 0.4 s into epoch E's evaluation
TRIALS = [
    ("SIGTERM mid-epoch (scancel, preemption)", "SIGTERM", "step:5"),
    ("SIGUSR1 mid-epoch (Slurm --signal time-limit warning)", "SIGUSR1", "step:7"),
    ("SIGUSR2 mid-epoch (submitit timeout/preemption)", "SIGUSR2", "step:11"),
    ("SIGHUP mid-epoch (PBS, closed terminal)", "SIGHUP", "step:13"),
    ("SIGTERM at an epoch's last step", "SIGTERM", "step:8"),
    ("SIGTERM during epoch 0's evaluation", "SIGTERM", "eval:0"),
    ("SIGUSR1 during the final evaluation", "SIGUSR1", "eval:1"),
    ("SIGKILL mid-epoch (no warning: OOM kill, node loss)", "SIGKILL", "step:7"),
    ("SIGKILL during the final evaluation", "SIGKILL", "eval:1"),
]

CHILD = r"""
import json, os, signal, sys, threading
from robustperf.config import RunConfig
from robustperf.training import TrainingInterrupted, train
cfg = RunConfig.model_validate_json(sys.argv[1])
sig, trigger = sys.argv[3], sys.argv[4]
kind, value = trigger.split(":") if trigger != "none" else ("none", "0")
def fire():
    os.kill(os.getpid(), getattr(signal, sig))
def callback(event):
    if kind == "step" and event.kind == "step" and event.step == int(value):
        fire()
    steps_per_epoch = event.total_steps // 2
    if kind == "eval" and event.kind == "step" and event.step == (int(value) + 1) * steps_per_epoch:
        threading.Timer(0.4, fire).start()
try:
    train(cfg, sys.argv[2], callback=callback if kind != "none" else None)
except TrainingInterrupted as exc:
    print(json.dumps({"interrupted_at": exc.step}))
    sys.exit(75)
"""


def child(cfg_json: str, runs: Path, sig: str = "none", trigger: str = "none") -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", CHILD, cfg_json, str(runs), sig, trigger], env=env,
                          capture_output=True, text=True, timeout=600)


def weights(runs: Path, run_id: str) -> dict:
    from robustperf.store import RunDir
    from robustperf.store import checkpoint as ckpt

    return ckpt.load_checkpoint(RunDir.for_run(runs, run_id).checkpoints / ckpt.LAST)["model"]


def main() -> None:
    import torch

    from robustperf.config import RunConfig
    from robustperf.store import RunDir

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fault_table.md")
    args = p.parse_args()
    cfg = RunConfig().with_overrides(CFG)
    rows = []
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        ref = Path(tmp) / "ref"
        assert child(cfg.model_dump_json(), ref).returncode == 0
        ref_w = weights(ref, cfg.run_id)
        ref_evals = [r for r in RunDir.for_run(ref, cfg.run_id).read_metrics() if r["kind"] == "eval"]
        for i, (name, sig, trigger) in enumerate(TRIALS):
            runs = Path(tmp) / f"t{i}"
            t0 = time.perf_counter()
            first = child(cfg.model_dump_json(), runs, sig, trigger)
            stop_seconds = time.perf_counter() - t0
            rd = RunDir.for_run(runs, cfg.run_id)
            from robustperf.store import checkpoint as ckpt

            latest = ckpt.load_latest(rd.checkpoints)
            resume_step = int(latest["progress"]["step"]) if latest is not None else 0
            lines = [ln for ln in first.stdout.splitlines() if ln.startswith("{")]
            stopped = json.loads(lines[-1])["interrupted_at"] if lines else None
            evals_before = len([r for r in rd.read_metrics() if r["kind"] == "eval"])
            second = child(cfg.model_dump_json(), runs)
            same = second.returncode == 0 and all(torch.equal(a, b) for a, b in
                                                  zip(weights(runs, cfg.run_id).values(), ref_w.values(), strict=True))
            evals = [r for r in rd.read_metrics() if r["kind"] == "eval"]
            drop = ("eval_seconds", "seconds")
            same_evals = [{k: v for k, v in r.items() if k not in drop} for r in evals] == \
                [{k: v for k, v in r.items() if k not in drop} for r in ref_evals]
            # the step the stop took effect: the checkpoint's for a warning signal; for SIGKILL, the step it hit
            hit = stopped if stopped is not None else (int(trigger.split(":")[1]) if trigger.startswith("step")
                                                       else (int(trigger.split(":")[1]) + 1) * 8)
            due = sum(1 for r in ref_evals if r["step"] <= hit)  # evaluations an uninterrupted run had done by then
            rows.append({"trial": name, "exit": first.returncode, "stopped_at_step": hit, "resumed_from_step": resume_step,
                         "steps_lost": hit - resume_step, "eval_rerun": evals_before < due,
                         "evals_kept_before_resume": evals_before, "eval_rows_identical": same_evals,
                         "weights_identical": same, "first_process_seconds": round(stop_seconds, 1)})
            print(rows[-1], flush=True)  # noqa: T201
    head = ["| trial | exit | stop at step | resumed from step | steps lost (redone) | evaluation cut and rerun | "
            "eval rows = reference | final weights identical |", "|---|---|---|---|---|---|---|---|"]
    body = [f"| {r['trial']} | {r['exit']} | {r['stopped_at_step']} | {r['resumed_from_step']} | {r['steps_lost']} | "
            f"{'yes' if r['eval_rerun'] else 'no'} | {'yes' if r['eval_rows_identical'] else 'no'} | "
            f"{'yes' if r['weights_identical'] else 'no'} |" for r in rows]
    text = "\n".join([
        "# Fault table (issue 23): signals, kills and requeues against one training run", "",
        f"Machine: 2-core x86_64 dev VM, no GPU, shared with other jobs ({platform.node()}); torch {torch.__version__}.",
        "Run: tiny_cnn width 8 on digits, 2 epochs x 8 steps, PGD-2 training, per-epoch PGD-60 evaluation of 64",
        "points in batches of 8, step checkpoints every 4 steps. Command: `python benchmarks/fault_trials.py`.",
        "A warning signal (TERM/USR1/USR2/HUP) checkpoints at the step in flight: 0 steps lost; a cut evaluation",
        "is rerun whole on resume. SIGKILL gives no warning: the steps since the last step checkpoint are redone.",
        "", *head, *body, "",
        "On the real single-node Slurm (tests/sweep/test_slurm.py, marker `slurm`): `scontrol requeue` mid-run",
        "(the task comes back and resumes from its step checkpoint; final weights identical: asserted) and a",
        "1-minute `--time` whose USR1 warning stopped the run, then `study --resubmit` (resumed at the step it",
        "stopped, 0 steps lost or redone; final weights identical: asserted).", ""])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(args.out)  # noqa: T201


if __name__ == "__main__":
    main()
