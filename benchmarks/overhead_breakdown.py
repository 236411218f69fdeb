"""Robust vs standard training overhead (papers/004 XV): per-epoch ratios with repeats and time by layer type.

Runs `robustperf.training.overhead.measure_overhead` - the same measurement as ``robustperf cost breakdown``
- for standard training vs PGD-AT vs TRADES and writes a markdown table (machine named) and the JSON
next to it under ``benchmarks/results/``.

    # CPU (the shared 2-core VM): a tiny CNN on digits and a WRN-10-2 on random CIFAR-shaped images
    OMP_NUM_THREADS=1 python benchmarks/overhead_breakdown.py --preset cpu-tiny
    OMP_NUM_THREADS=1 python benchmarks/overhead_breakdown.py --preset cpu-wrn
    # GPU (owed where one is lent): ResNet-18 on random CIFAR-shaped images, batch 256, PGD-10, NVML energy
    python benchmarks/overhead_breakdown.py --preset gpu

Any preset field can be overridden with ``--set section.key=value`` (run-config keys).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from robustperf.config import RunConfig
from robustperf.training.overhead import LAYER_TYPES, PHASES, OverheadConfig, OverheadResult, measure_overhead

PRESETS: dict[str, dict[str, Any]] = {
    "cpu-tiny": {
        "config": {"data.dataset": "digits", "data.n_train": 512, "data.batch_size": 64, "model.name": "tiny_cnn",
                   "model.kwargs": {"width": 16}, "method.attack.eps": 0.1, "method.attack.step_size": 0.04,
                   "method.attack.n_steps": 3, "runtime.device": "cpu"},
        "overhead": {"repeats": 11, "max_steps": None, "profile_steps": 10},
        "what": "tiny_cnn width 16 on digits (8x8), 512 images/epoch, batch 64, PGD-3 (eps 0.1, step 0.04)",
    },
    "cpu-wrn": {
        "config": {"data.dataset": "random", "data.n_train": 256, "data.batch_size": 32, "model.name": "wide_resnet",
                   "model.kwargs": {"depth": 10, "width": 2}, "method.attack.n_steps": 5,
                   "method.attack.step_size": 2 / 255, "runtime.device": "cpu"},
        "overhead": {"repeats": 5, "max_steps": 4, "profile_steps": 4},
        "what": "WRN-10-2 on random 3x32x32 images, epoch = 4 batches of 32, PGD-5 (eps 8/255, step 2/255)",
    },
    "gpu": {
        "config": {"data.dataset": "random", "data.n_train": 10240, "data.batch_size": 256, "model.name": "resnet18",
                   "method.attack.n_steps": 10, "method.attack.step_size": 2 / 255, "runtime.device": "cuda"},
        "overhead": {"repeats": 5, "max_steps": 20, "profile_steps": 3},
        "what": "ResNet-18 on random 3x32x32 images, epoch = 20 batches of 256, PGD-10 (eps 8/255, step 2/255)",
    },
}


def _machine(device: str) -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.node()}: {cpu}, {len(os.sched_getaffinity(0))} cores usable, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads" + (f", GPU {gpu}" if gpu else ", no GPU")
            + f"; 1-min load average at the end {load:.1f}")


def markdown(result: OverheadResult, *, what: str, machine: str, command: str) -> str:
    def f(x: float | None, spec: str = ".4g") -> str:
        return "-" if x is None else format(x, spec)

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Robust vs standard training overhead: {what}", "",
             f"Machine: {machine}. Measured {stamp}.", f"Command: `{command}`.",
             f"Energy: {result.energy_method} ({result.energy_source}).", ""]
    lines += [f"Note: {n}." for n in result.notes] + [""]
    lines += ["## Per epoch (trimmed mean of the repeats) and ratio to standard training", "",
              "| method | s/epoch | J/epoch | W | CO2 g/epoch | x time | x energy | x power | x CO2 | x FLOPs (counted) "
              "| s per repeat |", "| --- " * 11 + "|"]
    for e in result.epochs:
        r = e.ratios
        lines.append(f"| {e.method} | {f(e.seconds)} | {f(e.joules)} | {f(e.watts)} | "
                     f"{f(None if e.co2_kg is None else e.co2_kg * 1e3)} | {f(r.get('seconds'), '.3f')} | "
                     f"{f(r.get('joules'), '.3f')} | {f(r.get('watts'), '.3f')} | {f(r.get('co2_kg'), '.3f')} | "
                     f"{f(r.get('flops'), '.3f')} | {' '.join(f'{s:.3g}' for s in e.seconds_repeats)} |")
    if result.layers:
        clock = result.layers[0].clock
        lines += ["", f"## Time per step by layer type and phase (ms, {clock}, torch.profiler, "
                      f"{result.layers[0].steps} steps after one warm-up)", "",
                  "| ms per step | " + " | ".join(layer.method for layer in result.layers) + " |",
                  "| --- " * (len(result.layers) + 1) + "|"]
        for k in LAYER_TYPES:
            lines.append(f"| {k} | " + " | ".join(f"{layer.by_type[k]:.2f} ({layer.by_type[k] / layer.total_ms:.0%})"
                                                  for layer in result.layers) + " |")
        lines.append("| total in ops | " + " | ".join(f"{layer.total_ms:.2f}" for layer in result.layers) + " |")
        lines.append("| untracked (Python, dispatch, profiler) | "
                     + " | ".join(f"{layer.untracked_ms:.2f}" for layer in result.layers) + " |")
        lines.append("| step wall time (profiled) | " + " | ".join(f"{layer.wall_ms:.2f}" for layer in result.layers)
                     + " |")
        names = {"attack": "phase: attack input-gradient passes", "update": "phase: weight update fwd+bwd",
                 "optimizer": "phase: optimizer step"}
        for p in PHASES:
            lines.append(f"| {names[p]} | " + " | ".join(f"{layer.by_phase[p]:.2f}" for layer in result.layers) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value")
    parser.add_argument("--methods", default="pgd_at,trades")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--meter", default="auto")
    parser.add_argument("--watts", type=float, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tag", default=None, help="file name suffix (default: the preset)")
    args = parser.parse_args()

    preset = PRESETS[args.preset]
    cfg = RunConfig().with_overrides(preset["config"])
    if args.overrides:
        cfg = cfg.with_overrides(args.overrides)
    oc_kwargs = dict(preset["overhead"])
    if args.repeats is not None:
        oc_kwargs["repeats"] = args.repeats
    if args.max_steps is not None:
        oc_kwargs["max_steps"] = args.max_steps
    oc = OverheadConfig(methods=tuple(args.methods.split(",")), meter=args.meter, watts=args.watts, **oc_kwargs)
    result = measure_overhead(cfg, oc)
    import sys

    command = "python " + " ".join(sys.argv)
    text = markdown(result, what=preset["what"], machine=_machine(cfg.runtime.device), command=command)
    tag = args.tag or args.preset
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"overhead_{tag}.md").write_text(text)
    (args.out / f"overhead_{tag}.json").write_text(json.dumps(result.to_dict(), indent=1))
    print(text)


if __name__ == "__main__":
    main()
