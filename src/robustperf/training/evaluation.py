"""Per-epoch evaluation during training: clean accuracy, PGD-k robust accuracy and adversarial loss.

REFERENCE.md section 2 / Bartoldson et al. 2024 (papers/001, Sec. 3): PGD-40 on the CW loss, eps of
the training threat model, step 2/255 at eps 8/255; the "adversarial test loss" of their scaling laws
is the TRADES objective with beta = 5 on those PGD examples:
``adv_loss = CE(f(x), y) + 5 * KL(softmax(f(x)) || softmax(f(x_adv)))`` (batch mean, as in TRADES).
``adv_ce`` is the cross-entropy at the adversarial points, the loss PGD-AT minimises: a proper scoring
loss that, unlike the KL term, cannot shrink as a model gets less confident.

Runs of single-step methods (fast AT, free AT, FGSM without projection) are also evaluated with FGSM, and
each evaluation is compared with the previous one for catastrophic overfitting (Wong et al. 2020): PGD
accuracy collapsing while FGSM accuracy rises, the signature of a model that has learnt to mask the
gradient of a single step (`catastrophic_overfitting`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustperf.threat import ThreatModel
from robustperf.training.methods.base import trades_kl

ADV_LOSS_BETA = 5.0  # papers/001 Sec. 3: "the reported adversarial loss is the TRADES loss with beta = 5"
# Wong et al. 2020 ("Fast is better than free", Sec. 5 and their code) stop fast AT when the PGD accuracy
# falls by more than 0.2 from one epoch to the next: the collapse we flag (with FGSM accuracy rising).
CO_PGD_DROP = 0.2


class EvaluationStopped(RuntimeError):
    """`evaluate_robustness` returned early because its ``should_stop`` said so (a stop signal arrived)."""


@dataclass(frozen=True)
class EvalSettings:
    """The attack of the per-epoch evaluation."""

    eps: float
    step_size: float
    n_steps: int = 40
    norm: str = "linf"
    loss: str = "cw"
    random_start: bool = True
    batch_size: int = 256
    seed: int = 0
    fgsm: bool = False

    @property
    def threat(self) -> ThreatModel:
        """The PGD attack of this evaluation as a threat model."""
        return ThreatModel(norm=self.norm, eps=self.eps, step_size=self.step_size, n_steps=self.n_steps,
                           loss=self.loss, random_start=self.random_start)

    @property
    def fgsm_threat(self) -> ThreatModel:
        """FGSM: one step of size eps from x on the CE loss (L-inf), the catastrophic-overfitting probe."""
        return ThreatModel(norm="linf", eps=self.eps, step_size=self.eps, n_steps=1, loss="ce", random_start=False)


def eval_settings(cfg) -> EvalSettings:  # noqa: ANN001 - a RunConfig
    """Evaluation attack for a run: its evaluation threat model (`RunConfig.eval_threat`: the training
    eps unless ``eval.attack.eps`` asks another, the step scaled with it, 2/255 at 8/255 by default); FGSM
    too when the method attacks with a single step (catastrophic-overfitting watch)."""
    from robustperf.training.methods import METHODS

    threat, training = cfg.eval_threat, cfg.threat
    return EvalSettings(
        eps=threat.eps,
        step_size=threat.step_size,
        n_steps=threat.n_steps,
        norm=threat.norm,
        loss=threat.loss,
        random_start=threat.random_start,
        batch_size=cfg.data.eval_batch_size,
        seed=cfg.runtime.seed,
        # single-step methods, and an attack-based method run with one step (FGSM-AT, e.g. from zero init)
        fgsm=(METHODS.get(cfg.method.name).single_step or (training.n_steps == 1 and cfg.method.name != "standard"))
        and threat.norm == "linf",
    )


@torch.no_grad()
def _logits(model: nn.Module, x: Tensor) -> Tensor:
    return model(x).float()


def evaluate_robustness(model: nn.Module, x: Tensor, y: Tensor, settings: EvalSettings,
                        should_stop: Callable[[], bool] | None = None) -> dict[str, float]:
    """Clean accuracy and loss, PGD robust accuracy, the adversarial (TRADES beta=5) loss, and with
    ``settings.fgsm`` the accuracy on FGSM points (one step of size eps from x, CE loss, no random start).

    The model is put in eval mode and restored; a dedicated seeded generator drives the random start,
    so the global RNG (and hence an exact resume) is untouched.

    Args:
        model: maps [0, 1] images to logits.
        x: held-out images (N, C, H, W), on the model's device.
        y: labels (N,).
        settings: the attack.
        should_stop: asked before each batch and between its attack stages (PGD, FGSM); when it answers
            True the evaluation stops there and raises `EvaluationStopped` (nothing partial is returned:
            an evaluation is rerun whole, with the same seeded generator, so it gives the same numbers).
    """
    from robustperf.training.methods.adversarial import inner_attack

    pgd = inner_attack(settings.threat)  # the registry's PGD, run as the training-time inner loop (last iterate)
    fgsm = inner_attack(settings.fgsm_threat) if settings.fgsm else None
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=x.device).manual_seed(settings.seed + 7919)
    n_clean = n_robust = n_fgsm = 0
    ce_sum = kl_sum = adv_ce_sum = 0.0
    def check() -> None:
        if should_stop is not None and should_stop():
            raise EvaluationStopped("evaluation stopped by a stop request")

    try:
        for start in range(0, x.shape[0], settings.batch_size):
            check()
            xb, yb = x[start : start + settings.batch_size], y[start : start + settings.batch_size]
            clean = _logits(model, xb)
            x_adv = pgd.inner_max(model, xb, yb, generator=generator)
            check()
            adv = _logits(model, x_adv)
            n_clean += int((clean.argmax(1) == yb).sum())
            # a point is robust if both x and x_adv are classified correctly (the worst case of the two,
            # so robust accuracy can never exceed clean accuracy)
            n_robust += int(((adv.argmax(1) == yb) & (clean.argmax(1) == yb)).sum())
            ce_sum += float(F.cross_entropy(clean, yb, reduction="sum"))
            adv_ce_sum += float(F.cross_entropy(adv, yb, reduction="sum"))
            if fgsm is not None:
                check()
                x_fgsm = fgsm.inner_max(model, xb, yb)
                n_fgsm += int((_logits(model, x_fgsm).argmax(1) == yb).sum())
            kl_sum += float(trades_kl(adv, clean)) * xb.shape[0]
    finally:
        model.train(was_training)
    n = x.shape[0]
    clean_loss = ce_sum / n
    out: dict[str, float] = {
        "clean_acc": n_clean / n,
        "robust_acc": n_robust / n,
        "clean_loss": clean_loss,
        "adv_loss": clean_loss + ADV_LOSS_BETA * kl_sum / n,
        "adv_ce": adv_ce_sum / n,
        "n_eval": n,
    }
    if settings.fgsm:
        out["fgsm_acc"] = n_fgsm / n
    return out


def catastrophic_overfitting(previous: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """True when, from the previous evaluation to this one, PGD accuracy fell by at least `CO_PGD_DROP`
    while FGSM accuracy rose: the model resists the single step it trains on and no longer the multi-step
    attack (catastrophic overfitting, Wong et al. 2020; de Jorge et al. 2022). False without FGSM numbers.
    """
    keys = ("robust_acc", "fgsm_acc")
    if not all(k in previous and k in current for k in keys):
        return False
    collapsed = previous["robust_acc"] - current["robust_acc"] >= CO_PGD_DROP
    return bool(collapsed and current["fgsm_acc"] > previous["fgsm_acc"])
