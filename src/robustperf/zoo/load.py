"""`load_zoo_model`: a RobustBench zoo model by name from a local ``model_dir``, as a robustperf model.

    model = load_zoo_model("Carmon2019Unlabeled", model_dir="models", dataset="cifar10", threat_model="Linf")

The checkpoint is read from RobustBench's layout, ``<model_dir>/<dataset>/<threat_model>/<name>.pt``, and
loaded into robustperf's WideResNet (`robustperf.zoo.convert`), so every robustperf tool (AutoAttack,
FLOP counting, the cost meters) sees an ordinary robustperf model. With ``loader="robustbench"`` (or
"auto" for a name robustperf cannot build) RobustBench's own ``load_model`` builds it instead, when the
``robustbench`` package imports.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from robustperf.registry import RegistryError
from robustperf.zoo.catalog import ZooEntry, find_entry
from robustperf.zoo.convert import CheckpointMismatch, from_robustbench, unwrap
from robustperf.zoo.download import ZooDownloadError, check_checkpoint_file, download_gdrive, manual_fix

log = logging.getLogger(__name__)

Loader = Literal["auto", "robustperf", "robustbench"]


def checkpoint_path(model_dir: str | Path, name: str, dataset: str, threat_model: str) -> Path:
    """RobustBench's place for a checkpoint: ``<model_dir>/<dataset>/<threat_model>/<name>.pt``."""
    return Path(model_dir) / dataset / threat_model / f"{name}.pt"


def build_architecture(entry: ZooEntry) -> nn.Module:
    """The entry's architecture as a robustperf model (inputs in [0, 1], no normalisation), untrained."""
    from robustperf.models import create_model

    return create_model("wide_resnet", num_classes=entry.num_classes, input_shape=(3, 32, 32),
                        depth=entry.depth, width=entry.width)


def _robustbench_load(name: str, model_dir: Path, dataset: str, threat_model: str) -> nn.Module:
    try:
        from robustbench.utils import load_model
    except Exception as exc:  # noqa: BLE001 - robustbench 1.1.1 fails to import on setuptools>=81 (pkg_resources)
        raise ZooDownloadError(f"RobustBench's loader does not import here ({type(exc).__name__}: {exc}): robustbench "
                               f"1.1.1 needs pkg_resources (pip install 'setuptools<81') and the autoattack module "
                               f"(pip install git+https://github.com/fra31/auto-attack); or use a model robustperf "
                               f"builds (robustperf zoo list)") from None
    return load_model(name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model)


def load_zoo_model(name: str, model_dir: str | Path = "models", dataset: str = "cifar10", threat_model: str = "Linf",
                   *, download: bool = False, loader: Loader = "auto",
                   map_location: str | torch.device = "cpu") -> nn.Module:
    """A zoo model in eval mode, mapping [0, 1] images to logits.

    Args:
        name: RobustBench's model name.
        model_dir: the folder holding ``<dataset>/<threat_model>/<name>.pt``.
        dataset: cifar10 | cifar100 | imagenet.
        threat_model: Linf | L2 | corruptions.
        download: fetch a missing checkpoint (needs a network); otherwise a missing file is an error naming
            where to put it.
        loader: "robustperf" (build it here), "robustbench" (RobustBench's load_model) or "auto" (here when
            robustperf knows the name, else RobustBench).
        map_location: where the checkpoint's tensors are loaded.

    Raises:
        RegistryError: robustperf cannot build `name` and RobustBench was not asked.
        ZooDownloadError: the checkpoint is missing (offline), an HTML page, or did not download.
        CheckpointMismatch: the checkpoint does not fit the architecture.
    """
    path = checkpoint_path(model_dir, name, dataset, threat_model)
    if loader == "robustbench":
        return _robustbench_load(name, Path(model_dir), dataset, threat_model).eval()
    try:
        entry = find_entry(name, dataset, threat_model)
    except RegistryError:
        if loader == "auto":
            log.info("robustperf does not build %s; trying RobustBench's loader", name)
            return _robustbench_load(name, Path(model_dir), dataset, threat_model).eval()
        raise
    if not path.is_file():
        if not download:
            raise ZooDownloadError(f"no checkpoint {path}: run with --download where a network exists, or "
                                   f"{manual_fix(entry.gdrive_id, path)}")
        if entry.gdrive_id is None:
            raise ZooDownloadError(f"no download is known for {name}: {manual_fix(None, path)}")
        download_gdrive(entry.gdrive_id, path)
    check_checkpoint_file(path, entry.gdrive_id)
    state = from_robustbench(unwrap(torch.load(path, map_location=map_location, weights_only=True)), entry.depth)
    model = build_architecture(entry)
    expected = {k for k in model.state_dict() if k not in ("mean", "std")}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointMismatch(f"{path} does not fit {entry.architecture}: missing {missing[:3]}, unexpected "
                                 f"{unexpected[:3]} (is it the {dataset}/{threat_model} model {name}?)")
    try:
        model.load_state_dict(state, strict=False)  # mean/std stay the identity: RobustBench's WRNs take [0, 1] inputs
    except RuntimeError as exc:  # shapes that differ (another width or number of classes)
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointMismatch(f"{path} does not fit {entry.architecture} with {entry.num_classes} classes: "
                                 f"{detail}") from None
    return model.eval()


__all__ = ["Loader", "build_architecture", "checkpoint_path", "load_zoo_model"]
