"""Compare two runs directories of the same study, key by key, leaving out what a clock or a meter decides.

Used to show that a change that should not change results did not (issue 25: "the quickstart study's numbers
equal those before the change"). Run the study twice, once per code version, then:

    python benchmarks/compare_study.py RUNS_BEFORE RUNS_AFTER [--study quickstart]

Compared: `reports/<study>/analysis.json` (every key, with timing/energy/money keys left out, see `SKIP`), and
for each run directory present in both: result.json's status, final, best, cost (FLOPs; energy and money left out) and evaluations (their
accuracies), and metrics.jsonl with its timing fields left out. Prints each difference; exits 1 if any.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

# keys decided by a clock, an energy meter or a price of measured energy, not by the computation
SKIP = {"seconds", "wall_seconds", "time", "timestamp", "started", "ended", "created", "updated", "elapsed",
        "energy_joules", "joules", "energy_kwh", "co2_kg", "usd", "gpu_hours", "kwh", "watts", "energy_method",
        "samples_per_second", "step_seconds", "eval_seconds", "train_seconds", "duration", "host", "pid",
        "peak_memory_bytes", "peak_rss_bytes", "cpu_seconds", "summary", "throughput", "avg_power_w",
        "idle_watts", "energy", "dollars", "usd_electricity", "usd_gpu_hours", "provenance", "notes", "wall_time", "epoch_seconds"}


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key in SKIP or "second" in key or key.endswith("_s") or "time" in key:
                continue
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'after' if key not in a else 'before'}")
                continue
            _diff(a[key], b[key], f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items before, {len(b)} after")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(x, y, f"{path}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    elif a != b:
        out.append(f"{path}: {a!r} -> {b!r}")


def _metrics(path: Path) -> list[Any]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compare(before: Path, after: Path, study: str) -> list[str]:
    out: list[str] = []
    analysis = [d / "reports" / study / "analysis.json" for d in (before, after)]
    if all(p.is_file() for p in analysis):
        _diff(*(json.loads(p.read_text()) for p in analysis), "analysis", out)
    else:
        out.append(f"analysis.json missing: {[str(p) for p in analysis if not p.is_file()]}")
    runs = sorted(p.name for p in before.iterdir() if (p / "result.json").is_file())
    missing = [r for r in runs if not (after / r / "result.json").is_file()]
    out += [f"run {r}: not in after (a changed run id?)" for r in missing]
    for run in (r for r in runs if r not in missing):
        ra, rb = (json.loads((d / run / "result.json").read_text()) for d in (before, after))
        for key in ("status", "final", "best", "cost", "evaluations"):
            _diff(ra.get(key), rb.get(key), f"{run}.{key}", out)
        _diff(_metrics(before / run / "metrics.jsonl"), _metrics(after / run / "metrics.jsonl"), f"{run}.metrics", out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--study", default="quickstart")
    args = parser.parse_args()
    diffs = compare(args.before, args.after, args.study)
    n_runs = sum(1 for p in args.before.iterdir() if (p / "result.json").is_file())
    for line in diffs:
        print(line)
    print(f"{len(diffs)} differences over analysis.json and {n_runs} runs (timing, energy and money keys left out)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
