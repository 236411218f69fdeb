"""`benchmark`: RobustBench-style evaluation of a model on the first held-out points of a data set.

    result = benchmark(model, data_cfg, n_examples=10_000, eps=8 / 255)   # clean + AutoAttack "standard"

The data set may be a `DataConfig` (built with `robustperf.data.build_data`, its test split used), a
`DataBundle` (its test split) or any torch Dataset yielding (image in [0, 1], label). The points are the
fixed held-out subset of `robustperf.data.eval_tensors`, so two models benchmarked with the same
arguments see the same points. A DataLoader is taken as it is: its first `n_examples` points, in its order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from torch import nn

from robustperf.evaluation.evaluate import EvalResult, EvaluationError, evaluate
from robustperf.evaluation.inputs import Devices, as_tensors


class Norm(str, Enum):
    """The norm of a threat model, by RobustBench's names (its enum is called ``ThreatModel``; here that name
    is the whole threat model, `robustperf.threat.ThreatModel`); strings are accepted wherever one is expected."""

    LINF = "linf"
    L2 = "l2"


def _test_split(dataset: Any, seed: int) -> Any:
    from robustperf.config import DataConfig

    if isinstance(dataset, DataConfig):
        from robustperf.data import build_data

        return build_data(dataset, seed=seed).test
    test = getattr(dataset, "test", None)
    if test is not None and hasattr(dataset, "num_classes"):  # a DataBundle
        return test
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        return dataset
    raise EvaluationError(
        f"cannot benchmark on a {type(dataset).__name__}: pass a DataConfig, a DataBundle or a torch Dataset"
    )


def benchmark(
    model: nn.Module,
    dataset: Any,
    n_examples: int | None = 10_000,
    *,
    threat_model: Norm | str = Norm.LINF,
    eps: float = 8 / 255,
    version: str = "standard",
    batch_size: int = 500,
    device: Devices = None,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    seed: int = 0,
    data_seed: int = 0,
    out_dir: str | Path | None = None,
    search_dtype: str = "fp32",
    attack_params: Mapping[str, Mapping[str, Any]] | None = None,
    on_batch: Callable[[str, int, int], None] | None = None,
) -> EvalResult:
    """Clean and AutoAttack accuracy of `model` on `n_examples` held-out points of `dataset`.

    Args:
        model: maps images in [0, 1] to logits.
        dataset: DataConfig, DataBundle, torch Dataset or DataLoader.
        n_examples: points to use (None: the whole test split).
        threat_model: "linf" or "l2".
        eps: radius in [0, 1] pixel units.
        version: AutoAttack version.
        batch_size: points per attack call.
        device: where to run: one device or a list of CUDA devices (see `evaluate`).
        normalize: (mean, std) when the model expects normalised inputs (see `evaluate`).
        seed: attack seed.
        data_seed: seed for building the data and choosing the subset.
        out_dir: resumable state and outputs (see `evaluate`).
        search_dtype: "fp32" or "bf16" (search only; verdicts fp32).
        attack_params: per-stage overrides.
        on_batch: progress callback.

    Returns:
        EvalResult of `evaluate`.
    """
    norm = Norm(threat_model).value
    if n_examples is not None and n_examples < 1:
        raise EvaluationError(f"n_examples must be >= 1 or None, got {n_examples}")
    from torch.utils.data import DataLoader

    from robustperf.data import eval_tensors

    if isinstance(dataset, DataLoader):
        x, y = as_tensors(dataset, None, n_examples)
    else:
        x, y = eval_tensors(_test_split(dataset, data_seed), n_examples, seed=data_seed)
    return evaluate(
        model, x, y, attack="autoattack", eps=eps, norm=norm, version=version, batch_size=batch_size,
        device=device, normalize=normalize, seed=seed, out_dir=out_dir, search_dtype=search_dtype, attack_params=attack_params,
        on_batch=on_batch,
    )  # fmt: skip


__all__ = ["Norm", "benchmark"]
