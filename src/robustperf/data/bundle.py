"""`build_data`: a `DataConfig` and a seed -> the train/test (and synthetic) sets a run uses."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from robustperf.config import DataConfig
from robustperf.data.datasets import ArrayDataset, DataError, gather, to_unit
from robustperf.data.sources import DATASETS, load_synthetic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataBundle:
    """Everything a run needs to know about its data.

    Attributes:
        train: training set (yields (x float CHW in [0, 1], y int); batch access via `get_batch`).
        test: held-out set, same protocol.
        num_classes: number of classes.
        input_shape: (C, H, W) of the samples.
        mean: per-channel mean for the model's normalisation (None: none).
        std: per-channel std.
        name: the dataset name.
        synthetic: the synthetic set mixed into training batches, or None.
        synthetic_fid: its FID tag (from the config, else its metadata), or None.
        available_train: training images the data set holds on disk (before the n_train subset).
        available_test: test images it holds (before n_test).
    """

    train: Any
    test: Any
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    name: str
    synthetic: Any | None = None
    synthetic_fid: float | None = None
    available_train: int | None = None
    available_test: int | None = None

    def facts(self) -> dict[str, Any]:
        """What the run trained and tested on, for its record: used and available counts per split.

        ``partial`` is True when the files hold fewer images than the official release (`DATASET_FACTS`),
        None for data sets without an official size.
        """
        from robustperf.data.sources import DATASET_FACTS

        official = DATASET_FACTS.get(self.name)
        partial = None if official is None or self.available_train is None else (
            (self.available_train, self.available_test) != (official.n_train, official.n_test))
        return {"dataset": self.name, "n_train": len(self.train), "n_test": len(self.test),
                "available_train": self.available_train, "available_test": self.available_test,
                "official_train": official.n_train if official else None,
                "official_test": official.n_test if official else None, "partial": partial}


def _check_n_train(cfg: DataConfig, available: int) -> None:
    if cfg.n_train is not None and cfg.n_train > available:
        raise DataError(f"data.n_train={cfg.n_train} but {cfg.dataset} has {available} training samples: lower "
                        f"data.n_train to at most {available}, or leave it unset to use them all")


def check_data(cfg: DataConfig) -> int:
    """Load the data set's source once and check the data section against it (before any training).

    Returns:
        The number of training samples the data set has.

    Raises:
        DataError: missing files, or ``n_train`` beyond the data set's size (the message gives the real size).
        RegistryError: an unknown dataset name.
    """
    source = DATASETS.get(cfg.dataset)(cfg)
    _check_n_train(cfg, len(source.train))
    return len(source.train)


def build_data(cfg: DataConfig, *, seed: int) -> DataBundle:
    """Load the configured data set, take the seeded n_train subset and the first n_test test samples.

    Args:
        cfg: the run's data section.
        seed: selects which n_train training samples are used (the test set never depends on it).

    Returns:
        A `DataBundle`.

    Raises:
        DataError: missing files or an inconsistent configuration (the message names the fix).
        RegistryError: an unknown dataset name.
    """
    source = DATASETS.get(cfg.dataset)(cfg)
    train, test = source.train, source.test
    available_train, available_test = len(train), len(test)
    _check_n_train(cfg, available_train)
    if cfg.n_train is not None and cfg.n_train < len(train):
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        train = _subset(train, perm[: cfg.n_train])
    if cfg.n_test is not None and cfg.n_test < len(test):
        test = _subset(test, torch.arange(cfg.n_test))
    shape = _shape(train)
    synthetic, fid = None, cfg.synthetic_fid
    if cfg.synthetic_path and cfg.dataset != "synthetic":
        synthetic, meta_fid = load_synthetic(cfg.synthetic_path, image_size=cfg.image_size or shape[1])
        fid = fid if fid is not None else meta_fid
        if _shape(synthetic) != shape:
            raise DataError(f"synthetic images have shape {_shape(synthetic)} but {cfg.dataset} has {shape}; "
                            f"set data.image_size or regenerate the synthetic set")
        if int(synthetic.labels.max()) >= source.num_classes:
            raise DataError(f"synthetic labels go up to {int(synthetic.labels.max())} but {cfg.dataset} has "
                            f"{source.num_classes} classes")
    log.info("data %s: %d train, %d test, shape %s%s (of %d / %d on disk)", cfg.dataset, len(train), len(test),
             shape, f", {len(synthetic)} synthetic" if synthetic is not None else "", available_train,
             available_test)
    return DataBundle(train=train, test=test, num_classes=source.num_classes, input_shape=shape, mean=source.mean,
                      std=source.std, name=cfg.dataset, synthetic=synthetic, synthetic_fid=fid,
                      available_train=available_train, available_test=available_test)


def _subset(dataset: Any, indices: Tensor) -> Any:
    if isinstance(dataset, ArrayDataset):
        return dataset.subset(indices)
    return torch.utils.data.Subset(dataset, indices.tolist())


def _shape(dataset: Any) -> tuple[int, int, int]:
    shape = getattr(dataset, "shape", None)
    if shape is None:
        base = getattr(dataset, "dataset", None)  # torch Subset
        shape = getattr(base, "shape", None)
    if shape is None:
        shape = tuple(dataset[0][0].shape)
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def eval_tensors(dataset: Any, n: int | None, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A fixed held-out subset as tensors: all samples in order, or n chosen by a seeded permutation.

    Args:
        dataset: a data set from a `DataBundle` (or any (x, y) torch Dataset).
        n: how many samples (None or >= len: all).
        seed: which subset (the training loop passes 0 so every run sees the same images).

    Returns:
        (x float (n, C, H, W) in [0, 1], y long (n,)) on the CPU.
    """
    total = len(dataset)
    if n is None or n >= total:
        idx = torch.arange(total)
    else:
        idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
    base, base_idx = _unwrap(dataset, idx)
    x, y = gather(base, base_idx)
    size = getattr(base, "size", None) if isinstance(base, ArrayDataset) else None
    return to_unit(x, size), y.long()


def _unwrap(dataset: Any, idx: Tensor) -> tuple[Any, Tensor]:
    """Map indices of a torch Subset onto its base data set so batched access still works."""
    if isinstance(dataset, torch.utils.data.Subset):
        return dataset.dataset, torch.as_tensor(dataset.indices, dtype=torch.long)[idx]
    return dataset, idx
