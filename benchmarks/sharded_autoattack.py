"""Sharded AutoAttack on a trained model: `robustperf evaluate --nproc 1` vs `--nproc 2` (issue 23).

Trains configs/quickstart.yaml (tiny_cnn width 16, PGD-AT on digits, 12 epochs) unless --run is given,
then runs AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square) at the run's eps on n held-out points with
1 process and with 2 gloo processes, and compares every per-point verdict and adversarial example. The
wall-time ratio is a CPU ratio (two processes on the same cores), not a GPU one.

    python benchmarks/sharded_autoattack.py --n-examples 120 [--run runs/quickstart-...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def robustperf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robustperf", *args], capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, default=None)
    p.add_argument("--n-examples", type=int, default=120)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sharded_autoattack.md")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sharded-aa-"))
    run = args.run
    if run is None:
        robustperf("train", "configs/quickstart.yaml", "--runs-dir", str(tmp / "runs"))
        run = next(d for d in (tmp / "runs").iterdir() if (d / "result.json").is_file())
    rows = {}
    for nproc in (1, 2):
        shutil.rmtree(run / "evaluations", ignore_errors=True)  # attack afresh, no state to resume from
        t0 = time.perf_counter()
        robustperf("evaluate", str(run), "--n-examples", str(args.n_examples), "--batch-size", str(args.batch_size),
                   "--device", "cpu", "--nproc", str(nproc))
        seconds = time.perf_counter() - t0
        stem = next(p.stem for p in (run / "evaluations").glob("autoattack*.json"))
        rows[nproc] = {"seconds": seconds, "summary": json.loads((run / "evaluations" / f"{stem}.json").read_text()),
                       "npz": dict(np.load(run / "evaluations" / f"{stem}.npz"))}
    one, two = rows[1], rows[2]
    identical = all(np.array_equal(one["npz"][k], two["npz"][k]) for k in one["npz"])
    s = one["summary"]
    text = "\n".join([
        "# Sharded AutoAttack: 1 vs 2 processes (`robustperf evaluate --nproc`)", "",
        f"Machine: 2-core x86_64 dev VM, no GPU, shared with other jobs ({platform.node()}); timings are noisy.",
        f"Model: {run.name} (configs/quickstart.yaml: tiny_cnn width 16, PGD-AT on digits, 12 epochs).",
        f"AutoAttack {s['version']} ({', '.join(s['per_attack'])}), {s['norm']} eps {s['eps']:.4g}, "
        f"n = {s['n_examples']}, batch {args.batch_size}, seed {s['seed']}.",
        f"Command: `python benchmarks/sharded_autoattack.py --n-examples {args.n_examples} --batch-size {args.batch_size}`", "",
        "| processes | clean acc | robust acc | wall seconds (incl. start-up) |", "|---|---|---|---|",
        *[f"| {n} | {r['summary']['clean_acc']:.4f} | {r['summary']['robust_acc']:.4f} | {r['seconds']:.1f} |"
          for n, r in rows.items()], "",
        f"Per-point verdicts, adversarial examples and predictions identical: {'yes' if identical else 'NO'}.",
        f"Wall-time ratio 1 / 2 processes: {one['seconds'] / two['seconds']:.2f} (a CPU ratio: both processes share "
        "the VM's 2 cores with other jobs).", ""])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)  # noqa: T201
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
