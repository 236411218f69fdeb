"""Live-logging overhead per training step: tracking off vs MLflow, TensorBoard and W&B, side by side.

Two measurements in one process:

1. End to end: the same short training run (digits, tiny CNN, PGD-2 AT, one epoch) with the `tracking:`
   block off and with each tracker on, in interleaved rounds so drift on a shared machine hits every
   setting alike. Per-step time is the gap between consecutive "step" events (the tracker's call sits
   inside the step that logs), after a warm-up of 10 steps; reported as the mean (which carries the
   logging steps' cost, and every stall of a shared machine) and the median (robust to those stalls).
   Beside wall time, the training thread's own CPU time per step (`time.thread_time`): what the step itself
   spends, which other jobs on a shared machine inflate much less than wall time.
2. Per call: a typical metrics row through `LiveTracking.log_row`, inline (the tracker's own cost) and
   queued (the default: what the training step pays while a background thread calls the tracker), so the
   overhead per step at any `runtime.log_every_n_steps` is call cost / n / step time.

    OMP_NUM_THREADS=1 python benchmarks/tracking_overhead.py --rounds 3 --out benchmarks/results/tracking_overhead_cpu.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustperf.config import config_from_dict
from robustperf.store.record import describe_machine
from robustperf.tracking.live import open_tracking
from robustperf.training import train

BASE: dict[str, Any] = {
    "data": {"dataset": "digits", "n_train": 1200, "n_test": 60, "batch_size": 8},
    "model": {"name": "tiny_cnn", "kwargs": {"width": 8}},
    "method": {"name": "pgd_at", "attack": {"eps": 0.1, "step_size": 0.05, "n_steps": 2}},
    "optim": {"epochs": 1, "lr": 0.05},
    "eval": {"n_examples": 40, "attack": {"eps": 0.1, "step_size": 0.05, "n_steps": 2}},
    "cost": {"energy_meter": "none", "count_flops": False},
    "runtime": {"device": "cpu", "progress": False, "log_every_n_steps": 50},
}
TRACKERS = ("off", "mlflow", "tensorboard", "wandb")


def tracking_block(name: str, root: Path) -> dict[str, Any]:
    return {"off": {}, "mlflow": {"mlflow": {"uri": f"file:{root / 'mlruns'}"}},
            "tensorboard": {"tensorboard": {"dir": str(root / "tb")}},
            "wandb": {"wandb": {"dir": str(root / "wb")}}}[name]


def step_times(name: str, log_every: int, root: Path) -> tuple[list[float], list[float]]:
    """(wall seconds, training-thread CPU seconds) between consecutive step events of one fresh run."""
    cfg = config_from_dict({**BASE, "runtime": {**BASE["runtime"], "log_every_n_steps": log_every},
                            "tracking": tracking_block(name, root)})
    stamps: list[tuple[float, float]] = []
    train(cfg, root / "runs", resume=False,
          callback=lambda ev: stamps.append((time.perf_counter(), time.thread_time())) if ev.kind == "step" else None)
    wall, cpu = np.diff(np.array(stamps), axis=0)[10:].T
    return list(wall), list(cpu)


def call_cost(name: str, root: Path, n_calls: int, background: bool) -> float:
    """Mean seconds the caller spends in one `log_row` of a typical train row (inline or queued)."""
    cfg = config_from_dict({**BASE, "tracking": tracking_block(name, root)})
    tracking = open_tracking(cfg.tracking, f"call-cost-{background}", cfg.resolved(), background=background)
    assert tracking is not None and tracking.sinks, f"{name} did not open"
    row = {"kind": "train", "loss": 2.3, "adv_acc": 0.1, "epoch": 0, "samples_seen": 8, "lr": 0.05, "seconds": 1.0}
    t0 = time.perf_counter()
    for step in range(1, n_calls + 1):
        tracking.log_row({**row, "step": step})
    spent = time.perf_counter() - t0
    tracking.close("finished")
    return spent / n_calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--log-every", type=int, nargs="+", default=[50, 1])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gaps: dict[tuple[int, str], list[float]] = {}  # mean gap of each round
        pooled: dict[tuple[int, str], list[float]] = {}  # every gap of every round
        cpu: dict[tuple[int, str], list[float]] = {}  # every training-thread CPU gap
        for log_every in args.log_every:
            for r in range(args.rounds):
                order = TRACKERS if r % 2 == 0 else tuple(reversed(TRACKERS))
                for name in order:
                    times, cpu_times = step_times(name, log_every, root / f"{name}-{log_every}-{r}")
                    gaps.setdefault((log_every, name), []).append(statistics.fmean(times))
                    pooled.setdefault((log_every, name), []).extend(times)
                    cpu.setdefault((log_every, name), []).extend(cpu_times)
        calls = {name: (call_cost(name, root / f"calls-{name}", args.calls, False),
                        call_cost(name, root / f"calls-{name}", args.calls, True)) for name in TRACKERS[1:]}
    lines = [f"# Live-logging overhead per training step ({time.strftime('%Y-%m-%d')})", "",
             f"Machine: {describe_machine()}; shared with other jobs, timings noisy. torch {torch.__version__}, "
             f"python {platform.python_version()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}.",
             "Run: digits, tiny_cnn width 8, PGD-2 AT, batch 8, 150 steps, one torch thread; "
             f"{args.rounds} interleaved rounds per setting.", "",
             "## End to end: ms per step (mean: of the round means, with their min-max; median: of all gaps)", "",
             "| log_every_n_steps | tracker | mean ms/step | round means | mean vs off | median ms/step | median vs off "
             "| thread CPU ms/step (mean) | CPU vs off |",
             "|---|---|---|---|---|---|---|---|---|"]
    for log_every in args.log_every:
        off = statistics.fmean(gaps[(log_every, "off")])
        off_median = statistics.median(pooled[(log_every, "off")])
        off_cpu = statistics.fmean(cpu[(log_every, "off")])
        for name in TRACKERS:
            vals = gaps[(log_every, name)]
            mean, median = statistics.fmean(vals), statistics.median(pooled[(log_every, name)])
            mean_cpu = statistics.fmean(cpu[(log_every, name)])
            vs = "" if name == "off" else f"{(mean / off - 1) * 100:+.1f} %"
            vs_median = "" if name == "off" else f"{(median / off_median - 1) * 100:+.1f} %"
            vs_cpu = "" if name == "off" else f"{(mean_cpu / off_cpu - 1) * 100:+.1f} %"
            lines.append(f"| {log_every} | {name} | {mean * 1e3:.2f} | {min(vals) * 1e3:.2f}-{max(vals) * 1e3:.2f} | "
                         f"{vs} | {median * 1e3:.2f} | {vs_median} | {mean_cpu * 1e3:.2f} | {vs_cpu} |")
    step_off = statistics.median(pooled[(args.log_every[0], "off")])
    lines += ["", f"## Per call: one `log_row` (mean of {args.calls} calls): inline, and queued (the default)", "",
              "| tracker | inline ms/call | queued ms/call | per step at log_every_n_steps=50, inline | "
              "per step at 50, queued | per step at 1, queued |", "|---|---|---|---|---|---|"]
    for name, (inline, queued) in calls.items():
        lines.append(f"| {name} | {inline * 1e3:.3f} | {queued * 1e3:.4f} | {inline / 50 / step_off * 100:.3f} % | "
                     f"{queued / 50 / step_off * 100:.4f} % | {queued / step_off * 100:.3f} % |")
    lines += ["", f"(per step = call cost / log_every_n_steps / median step time with tracking off, "
              f"{step_off * 1e3:.2f} ms)"]
    text = "\n".join(lines) + "\n"
    print(text)  # noqa: T201 - a benchmark prints its table
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
