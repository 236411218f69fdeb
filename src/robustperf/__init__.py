"""robustperf: measure and forecast what adversarial robustness costs.

The top-level names are imported lazily so that ``import robustperf`` (and the
scaling module) works without torch installed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "RunConfig": "robustperf.config",
    "load_config": "robustperf.config",
    "train": "robustperf.training",
    "create_model": "robustperf.models",
    "load_run_model": "robustperf.models",
    "create_method": "robustperf.training",
    "create_attack": "robustperf.attacks",
    "evaluate": "robustperf.evaluation",
    "benchmark": "robustperf.evaluation",
    "create_law": "robustperf.scaling",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'robustperf' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
