"""Compute-optimal model and data sizes for a FLOPs budget, and the model-size / compute trade-off.

Training compute C = k_method * f_arch * N * D (REFERENCE.md s.3); Bartoldson et al. 2024 use
C = 7822 N D for TRADES-10 WideResNets (27 forward-equivalents x 290 FLOPs per parameter per sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robustperf.scaling.errors import ScalingError
from robustperf.scaling.laws import Allocation, Approach2Law, ChinchillaLaw, SurfaceLaw, check_budget

__all__ = ["DEFAULT_FLOPS_PER_PARAM_SAMPLE", "Allocation", "Tradeoff", "compute_optimal", "flops_per_param_sample",
           "model_size_tradeoff", "optimal_loss"]

try:  # the cost module's sourced constant; plain float fallback keeps scaling importable on its own
    from robustperf.cost.analytic import BARTOLDSON_FLOPS_PER_PARAM_SAMPLE as _K

    DEFAULT_FLOPS_PER_PARAM_SAMPLE: float = float(_K.value)
    DEFAULT_FLOPS_PER_PARAM_SAMPLE_SOURCE: str = _K.source
except ImportError:  # pragma: no cover - only without the cost module
    DEFAULT_FLOPS_PER_PARAM_SAMPLE = 7822.0
    DEFAULT_FLOPS_PER_PARAM_SAMPLE_SOURCE = "Bartoldson et al. 2024 (papers/001): FLOPs = 7822 N D for TRADES-10 WRNs"


def flops_per_param_sample(method: str = "trades", n_steps: int = 10, arch: str = "wide_resnet") -> float:
    """k_method * f_arch from the cost module's analytic model (e.g. 27 x 290 = 7830 for TRADES-10 WRNs)."""
    from robustperf.cost.analytic import F_ARCH, forward_equivalents

    try:
        f = F_ARCH[arch].value
    except KeyError:
        raise ScalingError(f"unknown architecture family {arch!r}; choose one of {sorted(F_ARCH)}") from None
    return forward_equivalents(method, n_steps) * f


def compute_optimal(law: Any, flops: float, *, fid: float = 0.0, k: float = DEFAULT_FLOPS_PER_PARAM_SAMPLE
                    ) -> Allocation:
    """N*, D* minimising the law's loss subject to k N D = flops: the law's own ``allocate``.

    Closed form for Chinchilla/Approach 2 (papers/001 Sec. 3.2.2); numerical (1-D minimisation over log N)
    for Approach 3 and any `SurfaceLaw` without a closed form.
    """
    check_budget(flops, k)
    if isinstance(law, SurfaceLaw):
        return law.allocate(flops, fid=fid, k=k)
    raise ScalingError(f"compute_optimal needs an N, D law (a SurfaceLaw: chinchilla, approach2, approach3, ...), "
                       f"got {type(law).__name__}")


def optimal_loss(law: Any, flops: float, *, fid: float = 0.0, k: float = DEFAULT_FLOPS_PER_PARAM_SAMPLE) -> float:
    """The loss of the compute-optimal model at a budget."""
    return compute_optimal(law, flops, fid=fid, k=k).loss


@dataclass(frozen=True)
class Tradeoff:
    """Cost of training a non-optimal model size at the optimal loss (papers/001 Eq. 6).

    Attributes:
        omega_n: model size as a multiple of N*.
        omega_d: data multiple of D* that keeps the compute-optimal loss (inf if unreachable).
        overhead: extra compute, omega_n * omega_d - 1.
    """

    omega_n: float
    omega_d: float
    overhead: float


def model_size_tradeoff(law: Approach2Law | ChinchillaLaw, flops: float, omega_n: float, *, fid: float = 0.0,
                        k: float = DEFAULT_FLOPS_PER_PARAM_SAMPLE) -> Tradeoff:
    """omega_D = (1 - (omega_N^-alpha - 1) A N*^-alpha / (B' D*^-beta))^(-1/beta) (papers/001 Eq. 6)."""
    if omega_n <= 0:
        raise ScalingError(f"omega_n must be > 0, got {omega_n}")
    opt = compute_optimal(law, flops, fid=fid, k=k)
    A, B, _ = law.terms(fid)
    ratio = A * opt.N ** (-law.alpha) / (float(B) * opt.D ** (-law.beta))
    inner = 1.0 - (omega_n ** (-law.alpha) - 1.0) * ratio
    if inner <= 0:
        return Tradeoff(omega_n, float("inf"), float("inf"))
    omega_d = inner ** (-1.0 / law.beta)
    return Tradeoff(omega_n, float(omega_d), float(omega_n * omega_d - 1.0))
