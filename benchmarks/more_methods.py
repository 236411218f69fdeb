"""The training methods side by side on one config: time, counted FLOPs, accuracy, catastrophic overfitting.

Every method trains the same model on the same data from the same seed with `robustperf.training.train`
(the real loop) in one process, one after the other: standard, PGD-AT, TRADES, fast AT, FGSM without
projection (N-FGSM), free AT (m replays, epochs / m) and a prediction-averaging ensemble of PGD-AT members.
Printed per method: wall seconds of the run without its per-epoch evaluations (which differ: free AT makes
m times fewer passes, so fewer evaluations; median of ``--repeats`` interleaved rounds after a warm-up run), optimiser steps, counted training FLOPs and forward equivalents per
image (with the analytic table's value), inference FLOPs per image, clean / PGD / FGSM accuracy of the
last evaluation, whether catastrophic overfitting was flagged, and time and FLOPs as ratios to standard
training.

    OMP_NUM_THREADS=1 python benchmarks/more_methods.py [--config configs/quickstart.yaml] [--eps 0.1] \
        [--epochs 12] [--replays 4] [--members 3] [--out benchmarks/results/more_methods_cpu.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from robustperf.config import load_config
from robustperf.cost import analytic
from robustperf.training import train


def variants(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    members = {"model.name": "ensemble", "model.kwargs.member": "tiny_cnn", "model.kwargs.members": args.members}
    return [
        ("standard", {"method.name": "standard"}),
        ("pgd_at", {"method.name": "pgd_at"}),
        ("trades", {"method.name": "trades"}),
        ("fast_at", {"method.name": "fast_at"}),
        ("fgsm_noproj", {"method.name": "fgsm_noproj"}),
        (f"free_at m={args.replays}", {"method.name": "free_at", "method.kwargs.replays": args.replays}),
        (f"ensemble {args.members}x pgd_at", {"method.name": "ensemble", **members}),
    ]


def run_one(config: str, overrides: dict[str, Any], runs_dir: Path) -> dict[str, Any]:
    cfg = load_config(config, overrides)
    updates = 0

    def count(*_: object) -> None:
        nonlocal updates
        updates += 1

    handle = register_optimizer_step_post_hook(count)
    start = time.perf_counter()
    try:
        run = train(cfg, runs_dir)
    finally:
        handle.remove()
    seconds = time.perf_counter() - start
    record = json.loads((run.path / "result.json").read_text())
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    eval_seconds = sum(r["eval_seconds"] for r in rows if r.get("kind") == "eval")
    cost, final = record["cost"], record["final"]
    forward = cost.get("inference_flops_per_image")
    kwargs = cfg.method.kwargs
    try:
        k_analytic = analytic.forward_equivalents(
            cfg.method.name, cfg.method.attack.n_steps,
            replays=int(str(kwargs["replays"])) if "replays" in kwargs else None)
    except analytic.UnknownMethodError:
        k_analytic = float("nan")
    return {
        "seconds": seconds - eval_seconds, "eval_seconds": eval_seconds, "updates": updates, "train_flops": cost["train_flops"],
        "passes": cost["flops_per_sample"] / forward if forward else float("nan"), "analytic": k_analytic,
        "inference_flops": forward, "samples_seen": cost["samples_seen"], "clean_acc": final.get("clean_acc"),
        "robust_acc": final.get("robust_acc"), "fgsm_acc": final.get("fgsm_acc"),
        "co": final.get("catastrophic_overfitting"), "run_id": cfg.run_id,
    }


def fmt(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--eps", type=float, default=None, help="training and evaluation eps (default: the config's)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--replays", type=int, default=4)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the median wall time counts")
    parser.add_argument("--out", type=Path, default=None, help="also write the table as Markdown here")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    common: dict[str, Any] = {"runtime.progress": False, "cost.energy_meter": "none", "runtime.device": "cpu"}
    if args.eps is not None:
        common.update({"method.attack.eps": args.eps, "method.attack.step_size": 0.4 * args.eps})
    if args.epochs is not None:
        common["optim.epochs"] = args.epochs
    runs = variants(args)
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in runs}
    with tempfile.TemporaryDirectory() as tmp:
        run_one(args.config, {**common, **runs[0][1]}, Path(tmp) / "warmup")  # imports, data, first-call costs
        for round_ in range(args.repeats):  # interleaved rounds: load on the machine hits every method alike
            for label, overrides in runs:
                result = run_one(args.config, {**common, **overrides}, Path(tmp) / f"round{round_}")
                results[label].append(result)
                print(label, round_, json.dumps(result), flush=True)
    rows = []
    for label, rs in results.items():
        row = dict(rs[0])
        row["seconds"] = statistics.median(r["seconds"] for r in rs)
        rows.append((label, row))
    base = rows[0][1]
    header = ("| method | train seconds (median) | x time | optimiser steps | train FLOPs | x FLOPs | F per image (analytic) | "
              "inference FLOPs/img | clean | PGD | FGSM | CO |")
    lines = [header, "|" + " --- |" * 12]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['seconds']:.1f} | {r['seconds'] / base['seconds']:.2f} | {r['updates']} | "
            f"{r['train_flops']:.3g} | {r['train_flops'] / base['train_flops']:.2f} | {r['passes']:.2f} "
            f"({r['analytic']:g}) | {fmt(r['inference_flops'], '.3g')} | {fmt(r['clean_acc'])} | "
            f"{fmt(r['robust_acc'])} | {fmt(r['fgsm_acc'])} | {'-' if r['co'] is None else r['co']} |")
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        head = (f"# More training methods side by side ({args.config}, eps {args.eps or 'of the config'})\n\n"
                f"Machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, torch "
                f"{torch.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, {when}.\n"
                f"Command: `python benchmarks/more_methods.py {' '.join(sys.argv[1:])}`\n\n")
        args.out.write_text(head + table + "\n")


if __name__ == "__main__":
    main()
