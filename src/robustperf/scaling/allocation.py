"""Compute-optimal model and data sizes for a FLOPs budget, and the model-size / compute trade-off.

Training compute C = k_method * f_arch * N * D (REFERENCE.md s.3); Bartoldson et al. 2024 use
C = 7822 N D for TRADES-10 WideResNets (27 forward-equivalents x 290 FLOPs per parameter per sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from robustperf.scaling.laws import Approach2Law, Approach3Law, ChinchillaLaw
from robustperf.scaling.result import ScalingError

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


@dataclass(frozen=True)
class Allocation:
    """Compute-optimal split of a budget.

    Attributes:
        flops: the budget C.
        N: optimal parameters N*.
        D: optimal training samples D*.
        loss: predicted loss at (N*, D*).
        a, b: local exponents d log N*/d log C and d log D*/d log C (constant for Approach 2).
        k: FLOPs per parameter per sample used (C = k N D).
    """

    flops: float
    N: float
    D: float
    loss: float
    a: float
    b: float
    k: float


def _check(flops: float, k: float) -> None:
    if not np.isfinite(flops) or flops <= 0:
        raise ScalingError(f"the FLOPs budget must be a positive number, got {flops}")
    if k <= 0:
        raise ScalingError(f"FLOPs per parameter per sample must be > 0, got {k}")


def compute_optimal(law: Any, flops: float, *, fid: float = 0.0, k: float = DEFAULT_FLOPS_PER_PARAM_SAMPLE
                    ) -> Allocation:
    """N*, D* minimising the law's loss subject to k N D = flops.

    Closed form for Chinchilla/Approach 2 (papers/001 Sec. 3.2.2): G = (alpha A / (beta B'))^(1/(alpha+beta)),
    N* = G (C/k)^a, D* = (C/k)^b / G with a = beta/(alpha+beta), b = alpha/(alpha+beta). Numerical
    (1-D minimisation over log N) for Approach 3 (papers/001 App. F.3.2 uses fsolve on the same problem).
    """
    _check(flops, k)
    if isinstance(law, (Approach2Law, ChinchillaLaw)):
        return _closed_form(law, flops, fid, k)
    if isinstance(law, Approach3Law):
        return _numerical(law, flops, fid, k)
    raise ScalingError(f"compute_optimal needs an N, D law (chinchilla, approach2, approach3), got {type(law).__name__}")


def _closed_form(law: Approach2Law | ChinchillaLaw, flops: float, fid: float, k: float) -> Allocation:
    A, B, _ = law.terms(fid)
    alpha, beta = law.alpha, law.beta
    if alpha <= 0 or beta <= 0:
        raise ScalingError(f"compute-optimal sizes need alpha, beta > 0, got {alpha}, {beta}")
    g = (alpha * A / (beta * float(B))) ** (1.0 / (alpha + beta))
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    nd = flops / k
    n_opt, d_opt = g * nd**a, nd**b / g
    return Allocation(flops, float(n_opt), float(d_opt), float(law(n_opt, d_opt, fid)), a, b, k)


def _numerical_n(law: Approach3Law, flops: float, fid: float, k: float) -> float:
    nd = flops / k
    log_nd = np.log(nd)

    def loss_of(log_n: float) -> float:
        return float(law(np.exp(log_n), np.exp(log_nd - log_n), fid))

    # The optimum lies strictly inside (1 parameter, nd parameters); bounded Brent on log N.
    res = minimize_scalar(loss_of, bounds=(0.0, log_nd), method="bounded", options={"xatol": 1e-10})
    return float(np.exp(res.x))


def _numerical(law: Approach3Law, flops: float, fid: float, k: float) -> Allocation:
    n_opt = _numerical_n(law, flops, fid, k)
    d_opt = flops / (k * n_opt)
    # Local exponent from a small step in log C.
    h = 1e-3
    n_up = _numerical_n(law, flops * np.exp(h), fid, k)
    a = float((np.log(n_up) - np.log(n_opt)) / h)
    return Allocation(flops, n_opt, float(d_opt), float(law(n_opt, d_opt, fid)), a, 1.0 - a, k)


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
