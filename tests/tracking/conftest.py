"""A real finished run (digits, tiny CNN, two epochs, every step logged) shared by the tracker tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tracking_config, wandb_records
from tracking_config import SHORT  # noqa: E402


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from robustperf.sweep import run_one

    root = tmp_path_factory.mktemp("runs")
    out = run_one(SHORT, root)
    assert out["status"] == "finished", out
    return root
