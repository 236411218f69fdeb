"""The first n test points of a RobustBench data set, read with robustperf's own loaders (no download)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor


def leaderboard_points(dataset: str, root: str | Path, n_examples: int | None) -> tuple[Tensor, Tensor]:
    """(x in [0, 1], y) of the first `n_examples` test images of cifar10/cifar100 under `root`, in file order.

    RobustBench evaluates on the first n points of the test set; so does this.

    Raises:
        DataError: no data at `root` (the message names the expected layout).
        ValueError: a data set robustperf cannot read for the zoo (imagenet).
    """
    from robustperf.config import DataConfig
    from robustperf.data import eval_tensors
    from robustperf.data.sources import DATASETS

    if dataset not in ("cifar10", "cifar100"):
        raise ValueError(f"zoo evaluation reads cifar10 or cifar100 test sets, not {dataset!r}")
    source = DATASETS.get(dataset)(DataConfig(dataset=dataset, root=str(root)))
    x, y = eval_tensors(source.test, None)
    return (x, y) if n_examples is None else (x[:n_examples], y[:n_examples])


__all__ = ["leaderboard_points"]
