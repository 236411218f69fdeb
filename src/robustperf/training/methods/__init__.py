"""Training methods: a registry of (settings, method) pairs and one front door, `create_method`.

>>> from robustperf.config import MethodConfig
>>> method = create_method(MethodConfig(name="trades", beta=5.0))
>>> out = method.step(model, x, y)   # StepOutput(loss, logits, adv_logits, metrics)

AWP is not a method of its own: set ``method.awp`` on "pgd_at" or "trades" to wrap them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from robustperf.registry import Registry
from robustperf.training.methods.adversarial import (
    MART,
    PGDAT,
    TRADES,
    AdversarialMethod,
    FastAT,
    FastATSettings,
    MARTSettings,
    PGDATSettings,
    TRADESSettings,
)
from robustperf.training.methods.awp import AWP, AWPSettings
from robustperf.training.methods.base import (
    MethodConfigError,
    MethodSettings,
    StepOutput,
    TrainingMethod,
    attack_mode,
    trades_kl,
    unwrap,
)
from robustperf.training.methods.ensemble import EnsembleMethod, EnsembleSettings
from robustperf.training.methods.single_step import FreeAT, FreeATSettings, NoProjFGSM, NoProjFGSMSettings
from robustperf.training.methods.standard import Standard, StandardSettings


@dataclass(frozen=True)
class MethodSpec:
    """A registry entry: the settings class, the method class, a one-line summary, AWP support, and
    whether it attacks with a single step (the per-epoch evaluation then also runs FGSM and watches for
    catastrophic overfitting)."""

    settings_cls: type[MethodSettings]
    method_cls: type[TrainingMethod]
    summary: str
    supports_awp: bool = False
    single_step: bool = False


METHODS: Registry[MethodSpec] = Registry("training method")
METHODS.register("standard", MethodSpec(StandardSettings, Standard, "cross entropy on clean images"))
METHODS.register(
    "pgd_at", MethodSpec(PGDATSettings, PGDAT, "PGD-k adversarial training (Madry et al. 2018)", supports_awp=True)
)
METHODS.register(
    "trades",
    MethodSpec(TRADESSettings, TRADES, "CE + beta * KL(clean || adv) (Zhang et al. 2019)", supports_awp=True),
)
METHODS.register("mart", MethodSpec(MARTSettings, MART, "misclassification-aware AT (Wang et al. 2020)"))
METHODS.register(
    "fast_at",
    MethodSpec(FastATSettings, FastAT, "FGSM from a random start, step 1.25 eps (Wong et al. 2020)", single_step=True),
)
METHODS.register(
    "free_at",
    MethodSpec(FreeATSettings, FreeAT, "free AT: m replays per batch, delta carried, epochs / m "
               "(Shafahi et al. 2019)", single_step=True),
)
METHODS.register(
    "ensemble",
    MethodSpec(EnsembleSettings, EnsembleMethod, "members of an ensemble model trained independently, "
               "predictions averaged at inference (model.name: ensemble)"),
)
METHODS.register(
    "fgsm_noproj",
    MethodSpec(NoProjFGSMSettings, NoProjFGSM, "FGSM without projection, noise U(-2eps, 2eps), step eps "
               "(N-FGSM, de Jorge et al. 2022)", single_step=True),
)


# the settings `settings_from_config` fills from the config's own fields (keep in step with its `values`)
_FROM_CONFIG = ("eps", "step_size", "n_steps", "norm", "loss", "random_start", "label_smoothing", "bn_mode", "beta")


def method_kwargs(name: str) -> dict[str, Any]:
    """The settings ``name`` takes from ``method.kwargs`` (its own, beyond the config's fields), with defaults."""
    spec = METHODS.get(name)
    return {f.name: f.default for f in dataclasses.fields(spec.settings_cls) if f.name not in _FROM_CONFIG}


def settings_from_config(cfg: Any) -> MethodSettings:
    """The frozen settings of ``cfg.name`` from a `robustperf.config.MethodConfig`."""
    spec = METHODS.get(cfg.name)
    attack = cfg.attack
    values: dict[str, Any] = {
        "eps": attack.eps,
        "step_size": attack.step_size,
        "n_steps": attack.n_steps,
        "norm": attack.norm,
        "loss": attack.loss,
        "random_start": attack.random_start,
        "label_smoothing": cfg.label_smoothing,
        "bn_mode": cfg.bn_mode,
        "beta": cfg.beta,
    }
    if spec.settings_cls is TRADESSettings:
        values["loss"] = "kl"  # the TRADES inner maximisation is the KL by definition
    fields = {f.name for f in dataclasses.fields(spec.settings_cls)}
    chosen = {k: v for k, v in values.items() if k in fields}
    kwargs = dict(getattr(cfg, "kwargs", None) or {})
    own = set(method_kwargs(cfg.name))  # the method's own settings, e.g. free_at's replays
    unknown = sorted(set(kwargs) - own)
    if unknown:
        valid = ", ".join(sorted(own)) or "none"
        raise MethodConfigError(f"method.kwargs {unknown} not understood by {cfg.name!r} (valid: {valid}): remove or rename")
    return spec.settings_cls(**chosen, **kwargs)


def create_method(cfg: Any, *, generator: torch.Generator | None = None) -> TrainingMethod:
    """Build the training method a `MethodConfig` describes (AWP-wrapped when ``cfg.awp`` is set).

    Args:
        cfg: the run's ``method`` section.
        generator: RNG for the attack's random start (on the training device); None uses the global RNG.

    Raises:
        RegistryError: unknown method name (the message lists the registered ones).
        MethodConfigError: AWP asked of a method that does not support it.
    """
    spec = METHODS.get(cfg.name)
    if cfg.awp is not None and not spec.supports_awp:
        ok = ", ".join(n for n in METHODS.names() if METHODS.get(n).supports_awp)
        raise MethodConfigError(f"method.awp works with {ok}, not {cfg.name!r}: remove method.awp or change method.name")
    settings = settings_from_config(cfg)
    if isinstance(settings, EnsembleSettings):
        if settings.member_method == cfg.name:
            raise MethodConfigError("an ensemble's member_method cannot be 'ensemble': name e.g. pgd_at or trades")
        member_cfg = cfg.model_copy(update={"name": settings.member_method, "kwargs": {}})
        method: TrainingMethod = EnsembleMethod(settings, generator, create_method(member_cfg, generator=generator))
    else:
        method = spec.method_cls(settings, generator)
    if cfg.awp is not None:
        if not isinstance(method, AdversarialMethod):
            raise MethodConfigError(f"method.awp needs an adversarial method (perturb + outer loss), not {cfg.name!r}")
        return AWP(method, AWPSettings(gamma=cfg.awp.gamma, warmup_epochs=cfg.awp.warmup_epochs))
    return method


def flop_iteration(cfg: Any) -> Callable[[nn.Module, Tensor, Tensor, Callable[[], None]], None]:
    """The training iteration of the method ``cfg`` describes, for FLOP counting
    (`robustperf.cost.accounting.train_flops_per_sample` counts what it runs).

    What the loop runs per batch before the optimiser step: ``step`` (attack, then outer loss; the
    counter's mark between the two), ``loss.backward()``, ``after_backward`` (AWP); ``method.replays`` times
    (free AT), so the count is per image drawn from the loader. A fresh method is built
    (no generator: the run's attack RNG is not touched); AWP is counted in its active phase.

    Args:
        cfg: the run's ``method`` section.
    """
    method = create_method(cfg)
    if cfg.awp is not None:
        method.set_epoch(cfg.awp.warmup_epochs)

    def iteration(model: nn.Module, x: Tensor, y: Tensor, attack_done: Callable[[], None]) -> None:
        model.train()
        for replay in range(method.replays):  # free AT: m passes per batch (the loop's replays)
            out = method.step(model, x, y, on_attack_done=attack_done if replay == 0 else None)
            out.loss.backward()
            method.after_backward(model)

    return iteration


__all__ = [
    "AWP",
    "METHODS",
    "AWPSettings",
    "EnsembleMethod",
    "EnsembleSettings",
    "FreeAT",
    "FreeATSettings",
    "NoProjFGSM",
    "NoProjFGSMSettings",
    "MethodConfigError",
    "MethodSettings",
    "MethodSpec",
    "StepOutput",
    "TrainingMethod",
    "attack_mode",
    "create_method",
    "flop_iteration",
    "method_kwargs",
    "settings_from_config",
    "trades_kl",
    "unwrap",
]
