"""The short run of the tracker tests (a module with its own name: `conftest` is ambiguous across folders)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sweep"))
from sweep_targets import TINY  # noqa: E402

# digits, a tiny CNN, two epochs, every step logged
SHORT = {**TINY, "optim": {"epochs": 2, "lr": 0.05},
         "runtime": {"device": "cpu", "progress": False, "log_every_n_steps": 1}}
