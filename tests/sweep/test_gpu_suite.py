"""benchmarks/gpu_suite.py cannot rot: every owed GPU measurement is a part, each part's script exists and
parses its smoke arguments, and (slow: .ci/run runs it) the whole smoke mode passes on the CPU."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "benchmarks" / "gpu_suite.py"


def _suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_owed_measurement_is_a_part_with_an_existing_script(tmp_path: Path) -> None:
    parts = {p.name: p for p in _suite().parts(tmp_path)}
    assert {"train_throughput", "autoattack", "energy", "overhead", "inference", "gcg", "ddp_step"} <= set(parts)
    for part in parts.values():
        for argv in (part.smoke, part.full):
            script = argv[0]
            assert script == "-m" or (ROOT / script).is_file(), script
    assert "pythia-1b" in parts["gcg"].full and "--compile" in parts["train_throughput"].full
    assert sum(p.budget_s for p in parts.values()) <= 9 * 60  # the full mode fits 9 minutes on one GPU


@pytest.mark.slow
def test_smoke_mode_runs_every_part_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "smoke.md"
    proc = subprocess.run([sys.executable, str(SUITE), "--smoke", "--out", str(out)], capture_output=True, text=True,
                          timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    text = out.read_text()
    assert "| failed" not in text and text.count("| ok |") == 8, text[:2000]
