"""Zoo test fixtures: CIFAR-10 test images when the shared subset is present, RobustBench's own WRN class."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # test_evaluate reuses helpers of conftest and test_load


def cifar_root() -> Path | None:
    """The CIFAR-10 subset (python format) if this checkout can see it: $ROBUSTPERF_CIFAR10, or ../shared/data."""
    candidates = [os.environ.get("ROBUSTPERF_CIFAR10", "")] + [
        str(base / "shared" / "data" / "cifar10_subset") for base in (REPO.parent, REPO.parent.parent)]
    for c in candidates:
        if c and (Path(c) / "cifar-10-batches-py" / "test_batch").is_file():
            return Path(c)
    return None


@pytest.fixture
def cifar10() -> Path:
    root = cifar_root()
    if root is None:
        pytest.skip("no CIFAR-10 subset: set ROBUSTPERF_CIFAR10 to a folder holding cifar-10-batches-py/")
    return root


def robustbench_file(relative: str) -> Path | None:
    """A file of the installed robustbench distribution (read without importing the package)."""
    from importlib import metadata

    try:
        dist = metadata.distribution("robustbench")
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(f"robustbench/{relative}")))
    return path if path.is_file() else None


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
