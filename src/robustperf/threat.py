"""The threat model: one frozen `ThreatModel` (norm, eps and the attack's settings) and the eps rule.

A run has two threat models, both parsed once from its config (`robustperf.config.RunConfig.threat` and
``.eval_threat``): the one it trains against (``method.attack``) and the one it is evaluated at. Which eps
an evaluation uses is decided by one function, `evaluation_eps`:

    evaluate at the training eps unless asked otherwise.

"Asked otherwise" is an explicit radius: ``eval.attack.eps`` set to anything but its old default 8/255
(`asked_eval_eps`), or ``--eps`` on the command line. The old default keeps its old meaning, "the training
eps": every config saved before this rule was written carries it, and such a run was evaluated at its
training eps (``eval.attack.eps`` then set nothing but the ratio of ``eval.attack.step_size`` to the radius;
a config that names 8/255 while training at another eps is refused by `robustperf.config.load_config`,
so nobody is silently evaluated at another radius than the one they wrote).

This module sits in the lowest layer: the config, the store (which reads configs as mappings), the attacks,
training, evaluation, the zoo and the CLI all use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

# The default of ``eval.attack.eps`` before the rule was written, in every resolved config saved since;
# it stands for "the training eps", as it always did.
LEGACY_EVAL_EPS = 8 / 255
NORMS = ("linf", "l2")


@dataclass(frozen=True)
class ThreatModel:
    """A norm ball and the PGD-style attack that searches it.

    Attributes:
        norm: "linf" or "l2".
        eps: the radius, in [0, 1] pixel units (8/255 is the CIFAR-10 L-inf standard).
        step_size: length of one attack step (linf: per coordinate; l2: Euclidean).
        n_steps: attack steps.
        loss: the attack's loss ("ce", "cw", "kl", "dlr").
        random_start: start from a uniform random point of the ball instead of the clean point.
        n_restarts: independent runs of the attack (training attacks run once).
    """

    norm: str = "linf"
    eps: float = 8 / 255
    step_size: float = 2 / 255
    n_steps: int = 10
    loss: str = "ce"
    random_start: bool = True
    n_restarts: int = 1

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if not (self.eps >= 0 and self.step_size >= 0 and self.n_steps >= 0 and self.n_restarts >= 1):
            raise ValueError("a threat model needs eps >= 0, step_size >= 0, n_steps >= 0 and n_restarts >= 1")

    def at_eps(self, eps: float) -> ThreatModel:
        """The same attack at radius ``eps``, its step scaled with the radius (the step/eps ratio is kept;
        a zero radius keeps the default ratio 1/4, 2/255 at 8/255). The step is computed as
        ``(step_size / eps) * new_eps`` even at the same radius, as the per-epoch evaluation always did, so
        its numbers stay bit-identical."""
        ratio = self.step_size / self.eps if self.eps > 0 else 0.25
        return dataclasses.replace(self, eps=eps, step_size=ratio * eps)

    def replace(self, **changes: Any) -> ThreatModel:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def pgd_params(self) -> dict[str, Any]:
        """Keyword parameters of the registered "pgd" attack (`robustperf.attacks.create_attack`)."""
        return {"eps": self.eps, "norm": self.norm, "step_size": self.step_size, "n_steps": self.n_steps,
                "loss": self.loss, "random_start": self.random_start, "n_restarts": self.n_restarts}


def read_eps(text: str) -> float:
    """Read a radius written as a number ("0.1") or a fraction ("8/255", spaces allowed): the one reader of
    both, for config values and ``--eps``.

    Raises:
        ValueError: not a number (ZeroDivisionError, for "8/0", is a ValueError's sibling: callers catch both).
    """
    return float(Fraction(text.replace(" ", ""))) if "/" in text else float(text)


def asked_eval_eps(value: float | None) -> float | None:
    """The radius a config's ``eval.attack.eps`` asks for: None (its old default 8/255, or unset) means
    "the training eps"; any other value is the radius to evaluate at."""
    if value is None or float(value) == LEGACY_EVAL_EPS:
        return None
    return float(value)


def evaluation_eps(training_eps: float, asked: float | None = None) -> float:
    """The eps rule, the one place it is written: evaluate at the training eps unless asked otherwise.

    Args:
        training_eps: the radius the run was trained at (``method.attack.eps``).
        asked: an explicit radius (``--eps``, or `asked_eval_eps` of ``eval.attack.eps``); None: none.
    """
    return float(training_eps) if asked is None else float(asked)


def evaluation_threat(training: ThreatModel, attack: ThreatModel | None = None,
                      asked_eps: float | None = None) -> ThreatModel:
    """The threat model a run is evaluated at: the training norm, the radius of `evaluation_eps`, and
    the evaluation ``attack``'s settings (its step scaled to that radius; default: the training attack's).

    Args:
        training: the run's training threat model.
        attack: the evaluation attack as configured (``eval.attack``: its eps is the radius its step is
            stated at).
        asked_eps: an explicit evaluation radius (see `evaluation_eps`).
    """
    base = (attack or training).replace(norm=training.norm)
    return base.at_eps(evaluation_eps(training.eps, asked_eps))


__all__ = ["LEGACY_EVAL_EPS", "ThreatModel", "asked_eval_eps", "evaluation_eps", "evaluation_threat", "read_eps"]
