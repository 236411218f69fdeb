"""Every owed GPU measurement in one command and one results file (issue 23, item 6).

    python benchmarks/gpu_suite.py              # on a GPU machine: full mode, <= 9 minutes on one H100
    python benchmarks/gpu_suite.py --smoke      # every part on the CPU in seconds (CI runs this)

Parts (each an existing benchmark script, run as its own process with a time budget):

  train_throughput   TRADES steps/s: robustperf's loop (bf16, then bf16 + torch.compile) vs a plain loop
  autoattack         AutoAttack standard: robustperf's cascade vs the reference (pyautoattack) on a trained WRN
  energy             NVML energy meter: agreement, overhead, and the planned-run estimate (needs CUDA)
  overhead           the overhead breakdown of a training step (data, attack, step, bookkeeping)
  inference          inference precisions (fp32, bf16, int8) and their robust accuracy, on a trained run
  gcg                GCG attack at Pythia-1b shape: robustperf's vs a plain implementation
  ddp_step           a 2-rank DDP training run (two GPUs when present; two gloo CPU ranks in smoke mode)

The results file (``benchmarks/results/gpu_suite_<tag>.md``) holds, per part, its command, exit code,
wall time and output tail, plus the machine. A GPU machine's Python may lack robustperf's light
dependencies: ``benchmarks/build_wheelhouse.sh`` fills ``benchmarks/wheelhouse/`` (git-ignored, <= 64 MiB)
and ``--install-wheelhouse`` installs it with ``pip --no-index`` before the parts run.
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
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable


@dataclass
class Part:
    name: str
    smoke: list[str]
    full: list[str]
    budget_s: float  # full-mode time budget
    needs_cuda: bool = False
    outputs: list[str] = field(default_factory=list)


def parts(tmp: Path) -> list[Part]:
    run = str(tmp / "runs")
    return [
        Part("train_throughput",
             ["benchmarks/train_throughput.py", "--tiny", "--device", "cpu", "--steps", "2", "--rounds", "1",
              "--warmup", "1"],
             ["benchmarks/train_throughput.py", "--device", "cuda", "--precision", "bf16", "--compile", "--rounds", "3"],
             120),
        Part("autoattack",
             ["benchmarks/autoattack_speed.py", "--model", "mlp", "--epochs", "1", "--n-examples", "16",
              "--batch-size", "16", "--device", "cpu"],
             ["benchmarks/autoattack_speed.py", "--model", "wrn", "--depth", "16", "--width", "4", "--epochs", "5",
              "--n-examples", "1000", "--batch-size", "500", "--device", "cuda", "--channels-last"],
             120),
        Part("energy", ["benchmarks/energy_meter_check.py", "--help"],
             ["benchmarks/energy_meter_check.py", "--repeats", "2", "--epoch-steps", "50", "--out", str(tmp)],
             50, needs_cuda=True),
        Part("overhead",
             ["benchmarks/overhead_breakdown.py", "--preset", "cpu-tiny", "--repeats", "3", "--max-steps", "2",
              "--methods", "pgd_at", "--out", str(tmp)],
             ["benchmarks/overhead_breakdown.py", "--preset", "gpu", "--repeats", "3", "--out", str(tmp)],
             50),
        Part("train_for_inference",
             ["-m", "robustperf", "train", "configs/quickstart.yaml", "--runs-dir", run, "--set", "optim.epochs=1",
              "--set", "eval.n_examples=32", "--set", "runtime.device=cpu"],
             ["-m", "robustperf", "train", "configs/quickstart.yaml", "--runs-dir", run, "--set", "optim.epochs=3",
              "--set", "runtime.device=cuda"],
             30),
        Part("inference",
             ["benchmarks/inference_quantized.py", "--run", "{run_dir}", "--device", "cpu", "--batch-sizes", "1,8",
              "--iters", "2", "--n-examples", "16", "--square-queries", "10", "--out", str(tmp)],
             ["benchmarks/inference_quantized.py", "--run", "{run_dir}", "--device", "cuda", "--out", str(tmp),
              "--tag", "gpu"],
             40),
        Part("gcg",
             ["benchmarks/gcg_speed.py", "--shape", "neox-tiny", "--device", "cpu", "--n-prompts", "1",
              "--n-iterations", "1", "--n-candidates", "8", "--top-k", "8", "--vocab-size", "300"],
             ["benchmarks/gcg_speed.py", "--shape", "pythia-1b", "--device", "cuda", "--model-vocab", "50304",
              "--n-prompts", "4", "--n-iterations", "5", "--n-candidates", "256"],
             90),
        Part("ddp_step",
             ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "robustperf", "train",
              "configs/quickstart.yaml", "--runs-dir", str(tmp / "ddp"), "--set", "optim.epochs=1",
              "--set", "eval.n_examples=32", "--set", "runtime.device=cpu"],
             ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "robustperf", "train",
              "configs/quickstart.yaml", "--runs-dir", str(tmp / "ddp"), "--set", "optim.epochs=2",
              "--set", "runtime.device=cuda"],
             40),
    ]


def cuda_devices() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def install_wheelhouse(folder: Path) -> str:
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        return f"no wheels in {folder} (run benchmarks/build_wheelhouse.sh where PyPI is reachable)"
    cmd = [PY, "-m", "pip", "install", "--no-index", "--find-links", str(folder), "-q", "--no-deps",
           *[str(w) for w in wheels]]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    size = sum(w.stat().st_size for w in wheels) / 2**20
    return f"installed {len(wheels)} wheels ({size:.1f} MiB) from {folder}: exit {proc.returncode} {proc.stderr[-300:]}"


def run_part(part: Part, smoke: bool, n_gpus: int, run_dir: str | None, env: dict[str, str]) -> dict:
    argv = [a.replace("{run_dir}", run_dir or "") for a in (part.smoke if smoke else part.full)]
    if not smoke and part.needs_cuda and n_gpus == 0:
        return {"name": part.name, "status": "skipped", "reason": "needs CUDA", "argv": argv}
    if part.name == "ddp_step" and not smoke and n_gpus < 2:
        return {"name": part.name, "status": "skipped", "reason": f"{n_gpus} GPU(s): needs 2", "argv": argv}
    if "{run_dir}" in " ".join(part.smoke + part.full) and not run_dir:
        return {"name": part.name, "status": "skipped", "reason": "no trained run (train_for_inference failed)"}
    budget = 120.0 if smoke else part.budget_s
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([PY, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget)
        code, out = proc.returncode, (proc.stdout + proc.stderr)
    except subprocess.TimeoutExpired as exc:
        code, out = 124, f"{exc.stdout or ''}{exc.stderr or ''}"[-3000:] + f"\n(stopped at its {budget:.0f} s budget)"
        out = out if isinstance(out, str) else out.decode(errors="replace")
    return {"name": part.name, "status": "ok" if code == 0 else "failed", "exit": code,
            "seconds": round(time.perf_counter() - t0, 2), "argv": argv, "tail": out[-2500:]}


def markdown(results: list[dict], meta: dict) -> str:
    lines = [f"# GPU suite ({meta['mode']})", "", f"machine: {meta['machine']}", f"wheelhouse: {meta['wheelhouse']}",
             f"total: {meta['seconds']:.1f} s", "", "| part | status | seconds |", "|---|---|---|"]
    lines += [f"| {r['name']} | {r['status']}{' (' + r['reason'] + ')' if 'reason' in r else ''} | "
              f"{r.get('seconds', '')} |" for r in results]
    for r in results:
        lines += ["", f"## {r['name']}", "", f"`python {' '.join(r.get('argv', []))}`", "", "```",
                  r.get("tail", r.get("reason", "")).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="every part on the CPU in seconds (CI)")
    p.add_argument("--only", default=None, help="comma-separated part names")
    p.add_argument("--install-wheelhouse", action="store_true", help="pip install --no-index benchmarks/wheelhouse/")
    p.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results/gpu_suite_<tag>.md)")
    args = p.parse_args()
    wheelhouse = install_wheelhouse(HERE / "wheelhouse") if args.install_wheelhouse else "not installed (--install-wheelhouse)"
    n_gpus = 0 if args.smoke else cuda_devices()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    if args.smoke:
        env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as tmp:
        run_dir = None
        for part in parts(Path(tmp)):
            if args.only and part.name not in args.only.split(",") and part.name != "train_for_inference":
                continue
            result = run_part(part, args.smoke, n_gpus, run_dir, env)
            results.append(result)
            print(f"{part.name}: {result['status']} {result.get('seconds', '')}", flush=True)  # noqa: T201
            if part.name == "train_for_inference" and result["status"] == "ok":
                found = [d for d in (Path(tmp) / "runs").glob("*") if (d / "result.json").is_file()]
                run_dir = str(found[0]) if found else None
        seconds = time.perf_counter() - start
    machine = f"{platform.machine()} {platform.node()}, {os.cpu_count()} cores, {n_gpus} CUDA GPU(s)"
    meta = {"mode": "smoke (CPU)" if args.smoke else "full", "machine": machine, "wheelhouse": wheelhouse,
            "seconds": seconds}
    tag = "smoke" if args.smoke else ("h100" if n_gpus else "cpu")
    out = args.out or HERE / "results" / f"gpu_suite_{tag}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(results, meta))
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "parts": results}, indent=1))
    print(f"{out} ({seconds:.1f} s)")  # noqa: T201
    if any(r["status"] == "failed" for r in results):
        sys.exit(1)


if __name__ == "__main__":
    if shutil.which(PY) is None and not Path(PY).exists():
        sys.exit("no Python interpreter")
    main()
