"""Analytic cost model in forward-pass equivalents F; pure Python (no torch).

REFERENCE.md section 3: with F the forward FLOPs of one image, a backward pass
costs about 2F (gradient w.r.t. activations + w.r.t. weights), and one attack
step with the gradient w.r.t. the input only costs 2F (forward + activation
gradient). Hence per training image and iteration:

=================  =============  ===================================================
method             passes         why
=================  =============  ===================================================
standard           3              forward + backward (Kaplan et al. 2020's 6ND = 3 x 2ND)
pgd_at  (k steps)  2k + 3         Madry et al. 2018: k input-gradient steps, then standard training
trades  (k steps)  2k + 7         Zhang et al. 2019, clean probabilities computed once: F for them,
                                  2kF attack, 2F for clean + adversarial logits, 4F backward
trades_original    3k + 9         the original TRADES code re-runs the clean forward every step
mart    (k steps)  2k + 6         Wang et al. 2020: CE attack, loss on clean and adversarial logits
fast_at / fgsm     5              Wong et al. 2020: one random-start FGSM step (k = 1 PGD-AT)
fgsm_noproj        5              de Jorge et al. 2022 (N-FGSM): noise, one FGSM step, no projection
free_at  (m)       3m             Shafahi et al. 2019: m replays per minibatch, each one forward and one
                                  backward that yields the weight and the input gradient (3F), so per
                                  weight update free AT costs what natural training costs
ensemble (of M)    as M           k members each trained with method M: k times M's FLOPs, but F is the
                                  ensemble's forward (k member forwards), so the passes are M's
+ awp              + loss passes  Wu et al. 2020: one more forward+backward of the method's loss
                                  on the proxy model (3 for CE losses, 6 for TRADES/MART)
=================  =============  ===================================================

The 2F attack step assumes the FLOPs are weight matmuls/convs, whose input gradient costs one
forward. Attention's QK^T and AV multiply two activations, so both gradients are needed and an
attack step costs more than 2F on ViTs: counted on the meta device, PGD-10 AT is 23.1-23.5F for
patch-4 ViTs and 24-24.8F for patch-2 ViTs (benchmarks/results/flops_check.json). The counter
(`robustperf.cost.accounting.train_flops_per_sample`) measures this; the formulas here do not.

So PGD-10 AT = 23F and TRADES-10 = 27F, and training compute is
``C = k_method * f_arch * N * D`` with ``f_arch`` the forward FLOPs per parameter
per sample (about 290 for WideResNets on 32x32, so Bartoldson et al. 2024's
"FLOPs = 7822 N D" is 27 x 290 and holds for WideResNets only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from robustperf.cost.constants import Sourced


class UnknownMethodError(ValueError):
    """A training method the analytic model has no formula for."""


def _standard(k: int) -> float:
    return 3.0


def _pgd_at(k: int) -> float:
    return 2.0 * k + 3.0


def _trades(k: int) -> float:
    return 2.0 * k + 7.0


def _trades_original(k: int) -> float:
    return 3.0 * k + 9.0


def _mart(k: int) -> float:
    return 2.0 * k + 6.0


def _fast_at(k: int) -> float:
    return 5.0  # always one FGSM step, whatever the attack config's n_steps


FREE_AT_DEFAULT_REPLAYS = 8  # Shafahi et al. 2019's m on CIFAR-10 (the default of free_at's settings)
ENSEMBLE_DEFAULT_MEMBER = "pgd_at"  # the default member_method of the ensemble method's settings


_PASSES: dict[str, Callable[[int], float]] = {
    "standard": _standard,
    "pgd_at": _pgd_at,
    "pgd": _pgd_at,
    "madry": _pgd_at,
    "trades": _trades,
    "trades_original": _trades_original,
    "mart": _mart,
    "fast_at": _fast_at,
    "fgsm": _fast_at,
    "fgsm_noproj": _fast_at,
}

# Forward+backward passes of each method's outer loss (what AWP's proxy step repeats).
_LOSS_PASSES: dict[str, float] = {
    "standard": 3.0,
    "pgd_at": 3.0,
    "pgd": 3.0,
    "madry": 3.0,
    "fast_at": 3.0,
    "fgsm": 3.0,
    "fgsm_noproj": 3.0,
    "trades": 6.0,
    "trades_original": 6.0,
    "mart": 6.0,
}


def replays_of(method: str, kwargs: Mapping[str, object] | None = None) -> int:
    """Optimiser steps per minibatch of ``method`` (free AT: its ``replays``, default 8; others: 1), which
    divide the planned epochs or samples (Shafahi et al. 2019 train N/m epochs)."""
    if method != "free_at":
        return 1
    value = (kwargs or {}).get("replays")
    return FREE_AT_DEFAULT_REPLAYS if value is None else int(str(value))


def method_names() -> list[str]:
    """Methods with an analytic formula."""
    return sorted([*_PASSES, "free_at", "ensemble"])


def forward_equivalents(method: str, n_steps: int = 10, *, awp: bool = False, replays: int | None = None,
                        member_method: str | None = None) -> float:
    """Forward-pass equivalents per training image per iteration (k_method).

    Args:
        method: "standard", "pgd_at", "trades", "trades_original", "mart", "fast_at"/"fgsm", "fgsm_noproj",
            "free_at".
        n_steps: attack steps k (ignored by "standard", "free_at" and the single-step methods).
        awp: adversarial weight perturbation on top (Wu et al. 2020).
        replays: free AT's m (None: its default, 8); per image drawn from the loader, m replays of 3F.
        member_method: "ensemble" only: how each member is trained (None: pgd_at).

    Returns:
        k_method, e.g. 27.0 for TRADES-10 and 23.0 for PGD-10 AT (REFERENCE.md section 3).
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    if method == "ensemble":
        member = member_method or ENSEMBLE_DEFAULT_MEMBER
        if member == "ensemble":
            raise UnknownMethodError("an ensemble's members cannot be ensembles")
        return forward_equivalents(member, n_steps, awp=awp, replays=replays)
    if method == "free_at":
        if awp:
            raise UnknownMethodError("no analytic cost for free_at with AWP (robustperf does not wrap free_at)")
        m = FREE_AT_DEFAULT_REPLAYS if replays is None else replays
        if m < 1:
            raise ValueError(f"replays must be >= 1, got {m}")
        return 3.0 * m
    try:
        passes = _PASSES[method](n_steps)
    except KeyError:
        raise UnknownMethodError(f"no analytic cost for method {method!r}; choose one of {method_names()}") from None
    if awp:
        passes += _LOSS_PASSES[method]
    return passes


def attack_equivalents(n_steps: int, *, restarts: int = 1, final_forward: bool = True) -> float:
    """Forward equivalents per image of a PGD-k attack: 2F per step (+ F to score the result)."""
    return restarts * (2.0 * n_steps + (1.0 if final_forward else 0.0))


def pgd_eval_equivalents(n_steps: int, *, restarts: int = 1) -> float:
    """Per test image: clean forward + PGD-k (+ scoring forward per restart)."""
    return 1.0 + attack_equivalents(n_steps, restarts=restarts)


# REFERENCE.md section 2: a point that survives AutoAttack "standard" costs about 1,900 gradient
# evaluations (2F each) + 5,900 forward queries (F each).
AUTOATTACK_ROBUST_POINT_GRADIENTS = Sourced(1900.0, "gradients/point", "REFERENCE.md s.2 (AutoAttack standard)", 2026)
AUTOATTACK_ROBUST_POINT_FORWARDS = Sourced(5900.0, "forwards/point", "REFERENCE.md s.2 (AutoAttack standard)", 2026)


def autoattack_equivalents_upper(robust_fraction: float = 1.0) -> float:
    """Forward equivalents per test point of AutoAttack "standard" if ``robust_fraction`` survive.

    Points broken early cost much less, so this is an upper bound; the counted cost
    (`eval_flops_from_counts`) is what a run reports.
    """
    per_robust = 2.0 * AUTOATTACK_ROBUST_POINT_GRADIENTS.value + AUTOATTACK_ROBUST_POINT_FORWARDS.value
    return 1.0 + robust_fraction * per_robust


def eval_flops_from_counts(forward_flops: float, *, n_forward_images: float, n_gradient_images: float) -> float:
    """FLOPs of an evaluation from its recorded counts of image-forwards and input-gradient image-passes.

    A gradient evaluation (forward + backward to the input) is 2F, a plain forward F.
    """
    return forward_flops * (n_forward_images + 2.0 * n_gradient_images)


# Forward FLOPs per parameter per 32x32 sample (REFERENCE.md section 3, measured with our counter).
F_ARCH: dict[str, Sourced] = {
    "wide_resnet": Sourced(290.0, "FLOPs/param/sample", "REFERENCE.md s.3: 288-291 for WideResNets, 32x32", 2026),
    "vit_patch4": Sourced(133.5, "FLOPs/param/sample", "REFERENCE.md s.3: 131-136 for patch-4 ViTs, 32x32", 2026),
    "vit_patch2": Sourced(567.0, "FLOPs/param/sample", "REFERENCE.md s.3: patch-2 ViTs, 32x32", 2026),
}

BARTOLDSON_FLOPS_PER_PARAM_SAMPLE = Sourced(
    7822.0, "FLOPs/param/sample", "Bartoldson et al. 2024 (papers/001): FLOPs = 7822 N D for TRADES-10 WRNs", 2024
)


def f_arch(forward_flops: float, n_params: float) -> float:
    """Forward FLOPs per parameter per sample: the architecture's constant in C = k f N D."""
    if n_params <= 0:
        raise ValueError(f"n_params must be > 0, got {n_params}")
    return forward_flops / n_params


def training_flops(k_method: float, f_arch_value: float, n_params: float, n_samples: float) -> float:
    """C = k_method * f_arch * N * D: training FLOPs for N parameters and D samples seen."""
    return k_method * f_arch_value * n_params * n_samples


def samples_for_budget(flops: float, k_method: float, f_arch_value: float, n_params: float) -> float:
    """D = C / (k_method * f_arch * N): samples a FLOP budget buys."""
    return flops / (k_method * f_arch_value * n_params)
