"""A real finished run (digits, tiny CNN, two epochs, every step logged) shared by the tracker tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "sweep"))
from sweep_targets import TINY  # noqa: E402

SHORT = {**TINY, "optim": {"epochs": 2, "lr": 0.05},
         "runtime": {"device": "cpu", "progress": False, "log_every_n_steps": 1}}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from robustperf.sweep import run_one

    root = tmp_path_factory.mktemp("runs")
    out = run_one(SHORT, root)
    assert out["status"] == "finished", out
    return root
