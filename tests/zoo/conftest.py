"""Zoo test fixtures: CIFAR-10 test images when the shared subset is present, RobustBench's own WRN class,
a tiny zoo entry registered for one test."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # zoo_helpers
from zoo_helpers import TINY, cifar_root, robustbench_file  # noqa: E402

from robustperf.zoo import ZOO, ZooEntry  # noqa: E402


@pytest.fixture
def cifar10() -> Path:
    root = cifar_root()
    if root is None:
        pytest.skip("no CIFAR-10 subset: set ROBUSTPERF_CIFAR10 to a folder holding cifar-10-batches-py/")
    return root


@pytest.fixture
def tiny_entry() -> Iterator[ZooEntry]:
    ZOO.register(TINY.key, TINY)
    yield TINY
    ZOO._items.pop(TINY.key, None)


@pytest.fixture
def rb_wide_resnet() -> ModuleType:
    """RobustBench's wide_resnet.py module, loaded from its file (its package __init__ needs pkg_resources,
    gone from setuptools>=81, so `import robustbench` fails in this environment)."""
    path = robustbench_file("model_zoo/architectures/wide_resnet.py")
    if path is None:
        pytest.skip("robustbench is not installed (pip install --no-deps robustbench)")
    spec = importlib.util.spec_from_file_location("rb_wide_resnet", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
