"""Helpers of the zoo tests (a module with its own name: `conftest` is ambiguous across test folders)."""

from __future__ import annotations

import ast
import dataclasses
import os
from pathlib import Path
from typing import Any, Optional  # noqa: F401 - names RobustBench's source uses, for exec below

import pytest
import torch

from robustperf.zoo import ZooEntry
from robustperf.zoo.convert import to_robustbench
from robustperf.zoo.load import checkpoint_path
from robustperf.zoo.model_info import MODEL_INFO_FIELDS

REPO = Path(__file__).resolve().parents[2]
TINY = ZooEntry("Tiny2026Zoo", "cifar10", "Linf", depth=10, width=1, sub_block1=True, eps=8 / 255)
CHEAP = {"apgd-ce": {"n_iter": 10}, "apgd-t": {"n_iter": 10, "n_target_classes": 2},
         "fab-t": {"n_iter": 10, "n_target_classes": 2}, "square": {"n_queries": 50}}


def cifar_root() -> Path | None:
    """The CIFAR-10 subset (python format) if this checkout can see it: $ROBUSTPERF_CIFAR10, or ../shared/data."""
    candidates = [os.environ.get("ROBUSTPERF_CIFAR10", "")] + [
        str(base / "shared" / "data" / "cifar10_subset") for base in (REPO.parent, REPO.parent.parent)]
    for c in candidates:
        if c and (Path(c) / "cifar-10-batches-py" / "test_batch").is_file():
            return Path(c)
    return None


def robustbench_file(relative: str) -> Path | None:
    """A file of the installed robustbench distribution (read without importing the package)."""
    from importlib import metadata

    try:
        dist = metadata.distribution("robustbench")
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(f"robustbench/{relative}")))
    return path if path.is_file() else None


def seeded(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BatchNorm statistics, so every key that is mapped wrongly changes the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point and not name.endswith(("mean", "std")) or name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return model.eval()


def save_robustbench_style(entry: ZooEntry, model_dir: Path, model: torch.nn.Module) -> Path:
    """Save like a RobustBench release: {'state_dict': {'module.<RobustBench key>': ...}}, sub_block1 included."""
    state = to_robustbench(model.state_dict(), entry.depth)
    state.update({k.replace("block1.", "sub_block1.", 1): v.clone() for k, v in state.items() if k.startswith("block1.")})
    path = checkpoint_path(model_dir, entry.name, entry.dataset, entry.threat_model)
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 99}, path)
    return path


def robustbench_schema() -> dict[str, Any]:
    """RobustBench's `ModelInfo` dataclass and `get_key`, executed from its installed utils.py source.

    (Its package cannot be imported here: robustbench 1.1.1 imports pkg_resources, removed in setuptools 81.)
    """
    path = robustbench_file("utils.py")
    if path is None:
        pytest.skip("robustbench is not installed (pip install --no-deps robustbench)")
    tree = ast.parse(path.read_text())
    wanted = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in ("ModelInfo", "get_key")]
    namespace: dict[str, Any] = {"dataclasses": dataclasses, "Optional": Optional}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return namespace


def check_with_robustbench(info: dict[str, Any]) -> None:
    rb = robustbench_schema()
    fields = {f.name for f in dataclasses.fields(rb["ModelInfo"])}
    assert set(MODEL_INFO_FIELDS) == fields  # our copy of the field list is RobustBench's
    assert set(info) - {"cost"} <= fields
    rb["ModelInfo"](**{k: v for k, v in info.items() if k != "cost"})  # every field RobustBench knows, no other
    # what RobustBench's list_available_models does with a model_info JSON of a Linf/L2 entry
    assert 0 <= float(info["clean_acc"]) / 100 <= 1
    assert rb["get_key"](info, ("external", "autoattack_acc")) == float(info["autoattack_acc"])
    assert isinstance(info["venue"], str) and isinstance(info["name"], str)
