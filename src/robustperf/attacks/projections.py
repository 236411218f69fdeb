"""Projections onto the eps-ball intersected with the image box [0, 1], and steepest-ascent steps.

Every attack keeps ``||x_adv - x||_p <= eps`` per sample and ``0 <= x_adv <= 1`` (DESIGN.md, contracts).
Clipping to [0, 1] after projecting onto the ball never leaves the ball: each coordinate only moves
towards ``x``, which already lies in the box, so every norm of the perturbation can only shrink.
"""

from __future__ import annotations

import torch
from torch import Tensor

NORMS = ("linf", "l2")


class NormError(ValueError):
    """Raised for a norm other than "linf" or "l2"."""


def check_norm(norm: str) -> str:
    """Return `norm` if supported, else raise `NormError` naming the accepted values."""
    if norm not in NORMS:
        raise NormError(f"unknown norm {norm!r}; use one of {', '.join(NORMS)}")
    return norm


def flat_norm(t: Tensor) -> Tensor:
    """Per-sample l2 norm, shaped (B, 1, 1, ...) so it broadcasts against `t`."""
    n = t.flatten(1).norm(p=2, dim=1)
    return n.view(-1, *([1] * (t.dim() - 1)))


def project(x_adv: Tensor, x: Tensor, eps: float | Tensor, norm: str) -> Tensor:
    """Project `x_adv` onto {z : ||z - x|| <= eps, 0 <= z <= 1}.

    Args:
        x_adv: candidate points (B, ...).
        x: centres of the balls (B, ...), in [0, 1].
        eps: radius (float, or a tensor broadcastable per sample).
        norm: "linf" or "l2".

    Returns:
        The projected points, same shape and dtype as `x_adv`.
    """
    delta = x_adv - x
    if norm == "linf":
        if isinstance(eps, Tensor):
            eps_t = eps.to(delta.dtype)
            delta = torch.maximum(torch.minimum(delta, eps_t), -eps_t)
        else:  # a Python float: no host-to-device copy per step
            delta = delta.clamp(-eps, eps)
    elif norm == "l2":
        delta = delta * torch.clamp(eps / (flat_norm(delta) + 1e-12), max=1.0)
    else:
        check_norm(norm)
    return torch.clamp(x + delta, 0.0, 1.0)


def random_start(x: Tensor, eps: float, norm: str, generator: torch.Generator | None = None) -> Tensor:
    """A random point of the eps-ball around `x`, clipped to [0, 1].

    linf: uniform in the cube (Madry et al. 2018). l2: uniform direction, radius eps * U(0, 1).
    Draws on the generator's device and moves the result, so a CPU generator works for CUDA inputs.
    """
    gen_device = generator.device if generator is not None else x.device
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=gen_device, dtype=torch.float32)
        delta = (2.0 * u - 1.0) * eps
    elif norm == "l2":
        d = torch.randn(x.shape, generator=generator, device=gen_device, dtype=torch.float32)
        r = torch.rand((x.shape[0],), generator=generator, device=gen_device, dtype=torch.float32)
        r = r.view(-1, *([1] * (x.dim() - 1)))
        delta = d / (flat_norm(d) + 1e-12) * eps * r
    else:
        check_norm(norm)
        raise AssertionError("unreachable")
    return torch.clamp(x + delta.to(device=x.device, dtype=x.dtype), 0.0, 1.0)


def ascent_direction(grad: Tensor, norm: str) -> Tensor:
    """Steepest-ascent direction of unit norm: sign(g) for linf, g / ||g||_2 for l2."""
    if norm == "linf":
        return grad.sign()
    if norm == "l2":
        return grad / (flat_norm(grad) + 1e-12)
    check_norm(norm)
    raise AssertionError("unreachable")
