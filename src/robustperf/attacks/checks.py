"""Sanity flags: signs that a robustness number may come from gradient masking rather than robustness.

Each check returns a `Flag` (fired or not, with a one-line explanation and the measured value). They
follow AutoAttack's checks (REFERENCE.md section 2) plus the classic warning signs of obfuscated
gradients (Athalye et al. 2018, Sec. 3.1; Carlini et al. 2019, "On evaluating adversarial robustness").

- ``randomized``: two forward passes of the same input differ, so the model is randomised and the
  deterministic attacks under-estimate its vulnerability; use version="rand" (EOT).
- ``softmax_output``: the outputs look like probabilities (rows in [0, 1] summing to 1); attacks need
  logits, and a softmax saturates gradients.
- ``zero_gradients``: some inputs have an input gradient of exactly zero, so gradient attacks cannot
  move them and the robust accuracy is inflated.
- ``square_beats_white_box``: the black-box Square attack fools > 0.2 pp of points the white-box attacks
  left standing; gradients are then not informative.
- ``eps_not_monotone``: robust accuracy does not fall as eps grows (or rises), which a working attack on
  nested balls cannot produce.
- ``pgd_weaker_than_fgsm``: iterated PGD leaves more points robust than a single FGSM step, so the
  iterations are being misled by the local gradient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FLAG_DOCS: dict[str, str] = {
    "randomized": "two forward passes of the same input differ: a randomised model; evaluate with version='rand'",
    "softmax_output": "outputs are probabilities (in [0, 1], rows sum to 1): attack the logits instead",
    "zero_gradients": "some inputs have an exactly zero input gradient: gradient attacks cannot move them",
    "square_beats_white_box": "black-box Square fooled > 0.2 pp of points the white-box attacks left robust",
    "eps_not_monotone": "robust accuracy does not fall as eps grows: the attack is not finding what exists",
    "pgd_weaker_than_fgsm": "PGD leaves more points robust than a single FGSM step: misleading gradients",
}


@dataclass(frozen=True)
class Flag:
    """One sanity check's outcome.

    Attributes:
        name: key of FLAG_DOCS.
        fired: True if the check found the warning sign.
        detail: one line with the measured quantity and what to do.
        value: the measured quantity (e.g. share of zero-gradient inputs), None if not applicable.
    """

    name: str
    fired: bool
    detail: str
    value: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {"fired": self.fired, "detail": self.detail, "value": self.value, "doc": FLAG_DOCS[self.name]}


def check_randomized(model: nn.Module, x: Tensor, *, tol: float = 1e-4) -> Flag:
    """Fires when two forward passes of `x` differ (max over rows of the l2 distance of l2-normalised logits)."""
    with torch.no_grad():
        a, b = model(x).float(), model(x).float()
    a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
    b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
    diff = float((a - b).norm(dim=1).max().item()) if a.numel() else 0.0
    pred_diff = bool((a.argmax(1) != b.argmax(1)).any()) if a.numel() else False
    fired = diff > tol or pred_diff
    return Flag("randomized", fired, f"max difference of normalised logits between two passes: {diff:.3g}", diff)


def check_softmax_output(model: nn.Module, x: Tensor, *, tol: float = 1e-5) -> Flag:
    """Fires when every output lies in [0, 1] and every row sums to 1 (within `tol`)."""
    with torch.no_grad():
        out = model(x).float()
    row_err = float((out.sum(1) - 1).abs().max().item())
    fired = bool(out.max() <= 1 + tol and out.min() >= -tol and row_err < tol)
    return Flag("softmax_output", fired, f"outputs in [{out.min():.3g}, {out.max():.3g}], max |row sum - 1| {row_err:.3g}",
                row_err)  # fmt: skip


def check_zero_gradients(model: nn.Module, x: Tensor, y: Tensor, *, max_share: float = 0.0) -> Flag:
    """Fires when more than `max_share` of the inputs have an exactly zero input gradient of the CE loss."""
    with torch.enable_grad():
        x_req = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(x_req).float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_req, allow_unused=True)
    if grad is None:
        share = 1.0
    else:
        share = float((grad.flatten(1).abs().sum(1) == 0).float().mean().item())
    return Flag("zero_gradients", share > max_share, f"{share:.1%} of inputs have a zero input gradient", share)


def check_square_beats_white_box(stage_accs: Sequence[tuple[str, float]], *, threshold: float = 0.002) -> Flag:
    """Fires when Square lowers the cascade's robust accuracy by more than `threshold` (0.2 pp).

    Args:
        stage_accs: (stage label, robust accuracy after that stage) in cascade order.
        threshold: largest tolerated drop, as a fraction.
    """
    labels = [label for label, _ in stage_accs]
    if "square" not in labels or labels.index("square") == 0:
        return Flag("square_beats_white_box", False, "not applicable: no white-box attack before Square", None)
    i = labels.index("square")
    before, after = stage_accs[i - 1][1], stage_accs[i][1]
    drop = before - after
    return Flag("square_beats_white_box", drop > threshold,
                f"Square lowered robust accuracy by {100 * drop:.2f} pp after the white-box attacks", drop)  # fmt: skip


def check_eps_monotone(acc_by_eps: Mapping[float, float], *, tol: float = 0.002) -> Flag:
    """Fires when robust accuracy rises by more than `tol` between two eps, or does not fall at all.

    Args:
        acc_by_eps: robust accuracy per eps (at least two distinct eps to apply).
        tol: largest tolerated rise, as a fraction.
    """
    pairs = sorted(acc_by_eps.items())
    if len(pairs) < 2:
        return Flag("eps_not_monotone", False, "not applicable: fewer than two eps values", None)
    rise = max(b - a for (_, a), (_, b) in zip(pairs, pairs[1:], strict=False))
    flat = pairs[-1][1] >= pairs[0][1] and pairs[-1][1] > 0  # no fall over the whole range
    fired = rise > tol or flat
    accs = ", ".join(f"{e:.4g}: {100 * a:.2f}%" for e, a in pairs)
    return Flag("eps_not_monotone", fired, f"robust accuracy by eps {accs}", rise)


def check_pgd_vs_fgsm(pgd_acc: float, fgsm_acc: float, *, tol: float = 0.0) -> Flag:
    """Fires when PGD's robust accuracy exceeds FGSM's by more than `tol`."""
    gap = pgd_acc - fgsm_acc
    return Flag("pgd_weaker_than_fgsm", gap > tol,
                f"robust accuracy PGD {100 * pgd_acc:.2f}% vs FGSM {100 * fgsm_acc:.2f}%", gap)  # fmt: skip


def pgd_and_fgsm_accuracy(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: str = "linf", seed: int = 0, n_steps: int = 20
) -> tuple[float, float]:
    """Robust accuracy of PGD-`n_steps` (CE, random start, step eps/4) and of one FGSM step (step eps, no start)."""
    from robustperf.attacks.base import create_attack

    pgd = create_attack("pgd", eps=eps, norm=norm, seed=seed, n_steps=n_steps, step_size=eps / 4, loss="ce",
                        random_start=True)  # fmt: skip
    fgsm = create_attack("pgd", eps=eps, norm=norm, seed=seed, n_steps=1, step_size=eps, loss="ce", random_start=False)
    pgd_acc = float((~pgd.perturb(model, x, y).success).float().mean().item())
    fgsm_acc = float((~fgsm.perturb(model, x, y).success).float().mean().item())
    return pgd_acc, fgsm_acc


__all__ = [
    "FLAG_DOCS",
    "Flag",
    "check_eps_monotone",
    "check_pgd_vs_fgsm",
    "check_randomized",
    "check_softmax_output",
    "check_square_beats_white_box",
    "check_zero_gradients",
    "pgd_and_fgsm_accuracy",
]
