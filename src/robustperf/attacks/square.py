"""Square Attack (Andriushchenko et al. 2020, ECCV): a score-based black-box random search.

Each iteration proposes one change per still-robust image: a square window of side s, where
s^2 / (h w) follows the fraction p of pixels changed, and keeps it when the margin loss
z_y - max_{j != y} z_j decreases (or the image becomes misclassified). One forward per image and
iteration, no gradients. p starts at p_init (0.8 in AutoAttack) and is halved at iterations
10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of a 10,000-query schedule (paper, Sec. 4 and App. A);
AutoAttack uses these breakpoints unrescaled for its 5,000 queries (REFERENCE.md section 2,
`rescale_schedule=False`).

- linf (Alg. 2): start from vertical stripes x + eps * (+-1) per column and channel; each proposal sets a
  window to x + eps * (+-1) per channel, i.e. a vertex of the ball.
- l2 (Alg. 3): start from a grid of "meta pseudo-Gaussian" blocks, scaled to norm eps; each proposal
  moves the mass of a second window into the first and refills the first with a fresh pseudo-Gaussian
  block, keeping ||delta||_2 = eps.

Window positions are shared by the batch in one iteration (as in the original code: the per-point
distribution is the same, and slicing is cheaper than masks); colours are drawn per image. Points are
dropped as soon as they are misclassified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from robustperf.attacks.base import ATTACKS, AttackCall, AttackConfig, AttackConfigError, BaseAttack, SearchModel
from robustperf.attacks.losses import margin
from robustperf.attacks.projections import flat_norm, project

# iterations (of a 10,000-query run) after which p is halved once more (paper App. A)
P_BREAKPOINTS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


@dataclass(frozen=True)
class SquareConfig(AttackConfig):
    """Square attack; defaults as in AutoAttack "standard" (REFERENCE.md section 2).

    Attributes:
        n_queries: iterations, i.e. forward queries per point (plus one for the start point).
        p_init: initial fraction of pixels changed per proposal.
        n_restarts: independent runs on the points still robust.
        rescale_schedule: stretch the p schedule to n_queries (False in AutoAttack).
    """

    n_queries: int = 5000
    p_init: float = 0.8
    n_restarts: int = 1
    rescale_schedule: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_queries < 0 or self.n_restarts < 1:
            raise AttackConfigError("need n_queries >= 0 and n_restarts >= 1")
        if not 0 < self.p_init <= 1:
            raise AttackConfigError(f"p_init must be in (0, 1], got {self.p_init}")


def p_schedule(it: int, p_init: float, n_queries: int, rescale: bool) -> float:
    """Fraction of pixels changed at iteration `it`: p_init halved after each breakpoint passed."""
    if rescale:
        it = int(it / n_queries * 10000)
    return p_init / 2 ** sum(it > b for b in P_BREAKPOINTS)


def _rings(a: int, b: int, device: torch.device) -> Tensor:
    """Concentric rectangles of an a x b block: sum_{k >= d} 1 / (k + 1)^2, d = Chebyshev distance to centre."""
    n_rings = max(a // 2 + 1, b // 2 + 1)
    d = torch.maximum(
        (torch.arange(a, device=device) - a // 2).abs()[:, None],
        (torch.arange(b, device=device) - b // 2).abs()[None, :],
    )
    weights = 1.0 / torch.arange(1, n_rings + 1, device=device, dtype=torch.float32) ** 2
    tail = weights.flip(0).cumsum(0).flip(0)  # tail[k] = sum_{j >= k} weights[j]
    out = tail[d.clamp(max=n_rings - 1)]
    return out / out.norm()


def pseudo_gaussian(s: int, device: torch.device, generator: torch.Generator) -> Tensor:
    """The s x s "meta pseudo-Gaussian" block of the l2 attack: two rectangle stacks of opposite sign, unit norm.

    `generator` (best a CPU one: no device sync) decides whether the block is transposed.
    """
    block = torch.cat([_rings(s // 2, s, device), -_rings(s - s // 2, s, device)], dim=0)
    block = block / block.norm()
    if torch.rand((), generator=generator, device=generator.device).item() > 0.5:
        block = block.t()
    return block


def _signs(shape: tuple[int, ...], generator: torch.Generator, like: Tensor) -> Tensor:
    bits = torch.randint(0, 2, shape, generator=generator, device=generator.device)
    return (2 * bits - 1).to(device=like.device, dtype=like.dtype)


def _randint(high: int, generator: torch.Generator) -> int:
    """Uniform integer in [0, high) (0 when high <= 0); `generator` is the host one, so no device sync.

    Window corners are drawn from [0, h - s), as in the original code and the AutoAttack reference, not
    from the paper's U{0, ..., h - s}: the last position is never used. Measured on 8x8 digits (l2, eps
    0.3) the inclusive range makes the attack ~5 pp stronger, and agreeing with the reference's numbers
    is the point of this implementation.
    """
    if high <= 0:
        return 0
    return int(torch.randint(0, high, (), generator=generator, device=generator.device).item())


@ATTACKS.register("square")
class Square(BaseAttack):
    """Square attack with the margin loss, linf or l2."""

    config_cls = SquareConfig
    config: SquareConfig

    def _attack(self, model: SearchModel, x: Tensor, y: Tensor, call: AttackCall) -> Tensor:
        if x.dim() != 4:
            raise AttackConfigError(f"square needs image batches (B, C, H, W), got shape {tuple(x.shape)}")
        # window positions and block orientations come from the host generator: no device sync per draw
        x_out = x.clone()
        alive = torch.arange(x.shape[0], device=x.device)
        queries = torch.zeros(x.shape[0], device=x.device)
        for _ in range(self.config.n_restarts):
            if alive.numel() == 0:
                break
            fooled = self._run(model, x[alive], y[alive], call, alive, x_out, queries)
            alive = alive[~fooled]
        call.extras["mean_queries"] = float(queries.mean().item())
        return x_out

    def _init(self, x: Tensor, call: AttackCall) -> Tensor:
        b, c, h, w = x.shape
        eps = self.config.eps
        if self.config.norm == "linf":
            return torch.clamp(x + eps * _signs((b, c, 1, w), call.generator, x), 0.0, 1.0)  # vertical stripes
        s = h // 5
        delta = torch.zeros_like(x)
        start = (h - 5 * s) // 2
        for i in range(h // s):
            for j in range(w // s):
                vh, vw = start + i * s, start + j * s
                block = pseudo_gaussian(s, x.device, call.host_generator).to(x.dtype)
                delta[:, :, vh : vh + s, vw : vw + s] += block * _signs((b, c, 1, 1), call.generator, x)
        return torch.clamp(x + eps * delta / (flat_norm(delta) + 1e-12), 0.0, 1.0)

    def _run(
        self,
        model: SearchModel,
        x: Tensor,
        y: Tensor,
        call: AttackCall,
        pid: Tensor,
        x_out: Tensor,
        queries: Tensor,
    ) -> Tensor:
        """One run on (x, y); writes fooled points into x_out[pid]; returns the fooled mask over x."""
        cfg = self.config
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        idx = torch.arange(x.shape[0], device=x.device)  # positions (in x) of the compact active rows
        x_best = self._init(x, call)
        loss_min = margin(model.logits(x_best), y)
        queries[pid] += 1
        xs, ys = x, y
        idx, xs, ys, x_best, loss_min = self._drop(model, idx, xs, ys, x_best, loss_min, fooled, pid, x_out)
        for it in range(cfg.n_queries):
            if idx.numel() == 0:
                break
            x_new = self._propose(xs, x_best, it, call)
            loss = margin(model.logits(x_new), ys)
            queries[pid[idx]] += 1
            better = _col(loss < loss_min, x_new)
            x_best = torch.where(better, x_new, x_best)
            loss_min = torch.minimum(loss, loss_min)
            idx, xs, ys, x_best, loss_min = self._drop(model, idx, xs, ys, x_best, loss_min, fooled, pid, x_out)
        return fooled

    def _drop(
        self,
        model: SearchModel,
        idx: Tensor,
        xs: Tensor,
        ys: Tensor,
        x_best: Tensor,
        loss_min: Tensor,
        fooled: Tensor,
        pid: Tensor,
        x_out: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Remove rows whose best point is misclassified (margin <= 0, confirmed in fp32 under bf16)."""
        done = loss_min <= 0
        if not bool(done.any()):
            return idx, xs, ys, x_best, loss_min
        if self.config.search_dtype != "fp32":
            di = done.nonzero().squeeze(1)
            ok = model.verdict_logits(x_best[di]).argmax(1) != ys[di]
            done[di] = ok
            loss_min[di[~ok]] = torch.finfo(loss_min.dtype).tiny  # keep searching from here
        x_out[pid[idx[done]]] = x_best[done]
        fooled[idx[done]] = True
        keep = ~done
        return idx[keep], xs[keep], ys[keep], x_best[keep], loss_min[keep]

    def _propose(self, x: Tensor, x_best: Tensor, it: int, call: AttackCall) -> Tensor:
        cfg = self.config
        _, c, h, w = x.shape
        p = p_schedule(it, cfg.p_init, cfg.n_queries, cfg.rescale_schedule)
        side = round(math.sqrt(p * h * w))
        if cfg.norm == "linf":
            s = min(max(side, 1), h, w)
            vh, vw = _randint(h - s, call.host_generator), _randint(w - s, call.host_generator)
            x_new = x_best.clone()
            x_new[:, :, vh : vh + s, vw : vw + s] = x[:, :, vh : vh + s, vw : vw + s] + cfg.eps * _signs(
                (x.shape[0], c, 1, 1), call.generator, x
            )
            return project(x_new, x, cfg.eps, "linf")
        return self._propose_l2(x, x_best, side, call)

    def _propose_l2(self, x: Tensor, x_best: Tensor, side: int, call: AttackCall) -> Tensor:
        """Alg. 3: move window 2's mass into window 1, refilled with a pseudo-Gaussian block; ||delta|| = eps."""
        eps = self.config.eps
        b, c, h, w = x.shape
        s = max(side, 3)
        s = min(s + 1 if s % 2 == 0 else s, h, w)
        vh, vw = _randint(h - s, call.host_generator), _randint(w - s, call.host_generator)
        vh2, vw2 = _randint(h - s, call.host_generator), _randint(w - s, call.host_generator)
        delta = x_best - x
        w1 = (slice(None), slice(None), slice(vh, vh + s), slice(vw, vw + s))
        w2 = (slice(None), slice(None), slice(vh2, vh2 + s), slice(vw2, vw2 + s))
        union = torch.zeros_like(delta[:1, :1])
        union[w1] = 1.0
        union[w2] = 1.0
        norm_w1 = delta[w1].pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()
        norm_union = (delta * union).pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()  # (B, C, 1, 1)
        norm_img = flat_norm(delta)
        block = pseudo_gaussian(s, x.device, call.host_generator).to(x.dtype) * _signs((b, c, 1, 1), call.generator, x)
        block = block + delta[w1] / (norm_w1 + 1e-12)
        budget = (torch.clamp(eps**2 - norm_img**2, min=0.0) / c + norm_union**2).sqrt()
        block = block / (block.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt() + 1e-12) * budget
        delta = delta.clone()
        delta[w2] = 0.0
        delta[w1] = block
        return torch.clamp(x + eps * delta / (flat_norm(delta) + 1e-12), 0.0, 1.0)


def _col(mask: Tensor, like: Tensor) -> Tensor:
    return mask.view(-1, *([1] * (like.dim() - 1)))
