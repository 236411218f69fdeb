"""FAB: the Fast Adaptive Boundary attack (Croce & Hein, ICML 2020), targeted and untargeted.

FAB looks for a minimally distorted adversarial example. Each step linearises the decision boundary
between the true class y and a class k at the current iterate x_i,

    f(z) ~ f(x_i) + <grad f(x_i), z - x_i> = 0,      f = z_k - z_y,

projects both x_i and the clean point x_0 onto that hyperplane intersected with the image box [0, 1]
(the projections `project_hyperplane_box`, FAB paper Sec. 3.1), and moves to a convex combination of
the two projections, extrapolated by eta (Sec. 3.2, eq. 9):

    x_{i+1} = clip((1 - a)(x_i + eta d_i) + a (x_0 + eta d_0)),   a = min(|d_i| / (|d_i| + |d_0|), a_max).

Whenever x_{i+1} is misclassified it is recorded and pulled back towards x_0 by beta (the "backward
step"), so later steps look for a closer adversarial example. FAB-T (AutoAttack "standard", REFERENCE.md
section 2) uses, for each target rank r = 2..10, the boundary to the r-th highest clean logit; untargeted
FAB picks at each step the class whose linearised boundary is closest (one gradient per class).

Differences from the reference code, none of which changes a verdict:

* Runs are rows of one batch: every (point, target, restart) run is an independent row, rows are
  refilled from a queue as others finish, and all rows of a point are dropped as soon as one row found
  an adversarial example within eps (AutoAttack only asks whether such a point exists; the reference
  keeps minimising the distortion and runs the targets one after another).
* The forward pass that computes the next gradient also decides whether the last step succeeded, so
  an iteration costs one forward + backward instead of two forwards + one backward. Rows whose step
  the linearised boundary calls adversarial (they will likely take the backward step, which makes
  that gradient useless) and rows past their last step are judged by a forward pass alone, as in the
  original. (On robust models most FAB steps cross the boundary, so this saves little there.)
* With ``search_dtype="bf16"`` every success is confirmed by an fp32 forward before it counts.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import torch
from torch import Tensor

from robustperf.attacks.base import ATTACKS, AttackCall, AttackConfig, AttackConfigError, BaseAttack, SearchModel
from robustperf.attacks.rows import Rows

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Projection onto a hyperplane intersected with the box [0, 1] (FAB paper, Sec. 3.1)
# --------------------------------------------------------------------------------------------------


def project_hyperplane_box(p: Tensor, w: Tensor, b: Tensor, norm: str) -> Tensor:
    """Smallest perturbation d (in `norm`) with <w, p + d> = b and 0 <= p + d <= 1, row by row.

    Moving coordinate i changes <w, p + d> at rate |w_i| in the useful direction, and it can move at
    most `room_i` (to 0 or 1). For linf the optimum moves every useful coordinate by min(lam, room_i);
    for l2 (KKT conditions) by min(mu |w_i|, room_i). In both cases the reached change
    G(lam) = sum_i |w_i| min(lam c_i, room_i) is piecewise linear and increasing, so lam is found
    exactly from the sorted breakpoints. If even the corner of the box cannot reach the hyperplane, the
    corner (the point of the box closest to it) is returned.

    Args:
        p: points (R, D) in [0, 1].
        w: hyperplane normals (R, D).
        b: offsets (R,).
        norm: "linf" or "l2".

    Returns:
        d (R, D); coordinates with w_i = 0 never move.
    """
    gap = (w * p).sum(1) - b  # (R,): <w, p> - b; the step must change <w, .> by -gap
    sign = torch.where(gap >= 0, 1.0, -1.0).to(w.dtype)
    ws = w * sign[:, None]  # oriented so that <ws, d> must decrease by |gap|
    need = gap.abs()  # (R,)
    direction = -torch.sign(ws)  # (R, D): move against ws; 0 where w_i = 0
    room = torch.where(ws > 0, p, 1.0 - p) * (ws != 0)  # how far each coordinate can go usefully
    aw = ws.abs()
    # per-coordinate slope c_i of the move in lam: 1 (linf) or |w_i| (l2); breakpoint lam_i = room_i / c_i
    slope = torch.ones_like(aw) if norm == "linf" else aw
    brk = torch.where(aw > 0, room / torch.where(aw > 0, slope, 1.0), torch.zeros_like(room))
    brk_s, order = brk.sort(dim=1)
    aw_s, room_s, slope_s = aw.gather(1, order), room.gather(1, order), slope.gather(1, order)
    sat = aw_s * room_s  # contribution of a saturated coordinate
    sat_before = sat.cumsum(1) - sat  # sum over coordinates saturating earlier
    rate = aw_s * slope_s
    rate_from = rate.flip(1).cumsum(1).flip(1)  # sum over coordinates not yet saturated
    reached = sat_before + brk_s * rate_from  # G at each breakpoint, non-decreasing
    k = (reached < need[:, None]).sum(1, keepdim=True)  # first breakpoint reaching the hyperplane
    feasible = k.squeeze(1) < p.shape[1]
    kc = k.clamp(max=p.shape[1] - 1)
    lam = (need - sat_before.gather(1, kc).squeeze(1)) / rate_from.gather(1, kc).squeeze(1).clamp_min(1e-30)
    lam = lam.clamp_min(0.0)
    move = torch.where(feasible[:, None], torch.minimum(lam.clamp(max=1e30)[:, None] * slope, room), room)
    return direction * move


def _dist(d: Tensor, norm: str) -> Tensor:
    """Per-row norm of a flattened (R, D) tensor."""
    return d.abs().amax(1) if norm == "linf" else d.norm(p=2, dim=1)


# --------------------------------------------------------------------------------------------------
# The attack
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FABConfig(AttackConfig):
    """FAB settings; defaults are FAB-T of AutoAttack "standard" (REFERENCE.md section 2).

    Attributes:
        n_iter: steps per run.
        n_restarts: runs per target (untargeted: per point); runs after the first start from a random
            point at distance eps / 2, as in the original code.
        n_target_classes: targets per point (FAB-T only): the 2nd..(n+1)-th highest clean logits.
        alpha_max: largest weight of the step from the clean point (eq. 9).
        eta: overshoot of the projection step.
        beta: backward-step factor applied after a success.
        max_rows: cap on rows (point, target, restart runs) per forward/backward; None means the number
            of points passed in, so memory never exceeds the caller's batch.
    """

    n_iter: int = 100
    n_restarts: int = 1
    n_target_classes: int = 9
    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9
    max_rows: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_iter < 1 or self.n_restarts < 1 or self.n_target_classes < 1:
            raise AttackConfigError("need n_iter >= 1, n_restarts >= 1 and n_target_classes >= 1")
        if not 0 <= self.alpha_max <= 1 or self.eta <= 0 or not 0 < self.beta <= 1:
            raise AttackConfigError("need 0 <= alpha_max <= 1, eta > 0 and 0 < beta <= 1")
        if self.max_rows is not None and self.max_rows < 1:
            raise AttackConfigError("max_rows must be None or >= 1")


class _Rows(Rows):
    """State of the active runs, one row each; `keep` drops rows from every tensor at once."""

    NAMES = ("pid", "y", "target", "x0", "x", "n_done", "fresh", "pred_adv")

    pid: Tensor  # index of the point (in the attacked batch) each row belongs to
    y: Tensor
    target: Tensor
    x0: Tensor
    x: Tensor
    n_done: Tensor
    fresh: Tensor
    pred_adv: Tensor


@dataclass(frozen=True)
class _Job:
    target_rank: int | None  # 2 = second highest clean logit; None for untargeted FAB
    restart: int


class _FABBase(BaseAttack):
    """The row loop shared by FAB-T and FAB; subclasses give the jobs and the linearised boundary."""

    config: FABConfig

    def _jobs(self, n_classes: int) -> list[_Job]:
        raise NotImplementedError

    def _boundary(self, model: SearchModel, rows: _Rows) -> tuple[Tensor, Tensor, Tensor]:
        """(logits (R, C), f (R,), grad f (R, D)) of the boundary each row steps towards."""
        raise NotImplementedError

    def _attack(self, model: SearchModel, x: Tensor, y: Tensor, call: AttackCall) -> Tensor:
        generator = call.generator
        cfg = self.config
        n = x.shape[0]
        order = call.clean_logits.argsort(dim=1, descending=True)  # (B, C): target ranks
        jobs = self._jobs(call.clean_logits.shape[1])
        queue = deque((job, pid) for job in jobs for pid in range(n))
        done = torch.zeros(n, dtype=torch.bool, device=x.device)
        x_out = x.clone()
        cap = cfg.max_rows or n
        rows = self._new_rows([], x, y, order, generator)
        while True:
            free = cap - len(rows)
            if free > 0 and queue:
                rows.extend(self._new_rows(_take(queue, free, done), x, y, order, generator))
            if len(rows) == 0:
                break
            # Rows whose step the linear model calls adversarial, and rows past their last step, are
            # judged by a forward pass alone: a backward there is likely wasted (the next gradient is
            # needed at the pulled-back point, or never). The others are judged by the gradient pass's
            # own logits, which saves the separate check forward of the original code.
            probe = rows.fresh & (rows.pred_adv | (rows.n_done >= cfg.n_iter))
            if bool(probe.any()):
                pi = probe.nonzero().squeeze(1)
                self._judge(model, rows, pi, model.logits(rows.x[pi]), done, x_out)
                rows.keep(~done[rows.pid] & ((rows.n_done < cfg.n_iter) | rows.fresh))
                if len(rows) == 0:
                    continue
            logits, f, grad = self._boundary(model, rows)
            stale = torch.zeros_like(rows.fresh)
            fi = rows.fresh.nonzero().squeeze(1)
            if fi.numel() > 0:
                stale[fi] = self._judge(model, rows, fi, logits[fi], done, x_out)
            keep = ~done[rows.pid]
            self._step(rows, f, grad, ready=keep & ~stale & (rows.n_done < cfg.n_iter))
            # a row ends once its last step has been judged; every row of a fooled point ends at once
            rows.keep(keep & ((rows.n_done < cfg.n_iter) | rows.fresh))
        call.extras["n_runs"] = len(jobs) * n
        return x_out

    def _new_rows(
        self, jobs: list[tuple[_Job, int]], x: Tensor, y: Tensor, order: Tensor, generator: torch.Generator
    ) -> _Rows:
        dev = x.device
        pid = torch.tensor([p for _, p in jobs], dtype=torch.long, device=dev)
        rank = torch.tensor([j.target_rank or 1 for j, _ in jobs], dtype=torch.long, device=dev)
        x0 = x[pid]
        start = x0.clone()
        restarted = torch.tensor([j.restart > 0 for j, _ in jobs], dtype=torch.bool, device=dev)
        if bool(restarted.any()):
            ri = restarted.nonzero().squeeze(1)
            start[ri] = self._random_start(x0[ri], generator)
        return _Rows(
            pid=pid,
            y=y[pid],
            target=order[pid, rank - 1],
            x0=x0,
            x=start,
            n_done=torch.zeros(len(jobs), dtype=torch.long, device=dev),
            fresh=torch.zeros(len(jobs), dtype=torch.bool, device=dev),
            pred_adv=torch.zeros(len(jobs), dtype=torch.bool, device=dev),
        )

    def _random_start(self, x0: Tensor, generator: torch.Generator) -> Tensor:
        """A random point at distance eps / 2 (in the attack's norm), clipped to the box (original code)."""
        cfg = self.config
        shape, dev = x0.shape, generator.device
        if cfg.norm == "linf":
            t = 2 * torch.rand(shape, generator=generator, device=dev) - 1
            t = t / t.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, *([1] * (x0.dim() - 1)))
        else:
            t = torch.randn(shape, generator=generator, device=dev)
            t = t / t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x0.dim() - 1)))
        return torch.clamp(x0 + 0.5 * cfg.eps * t.to(device=x0.device, dtype=x0.dtype), 0.0, 1.0)

    def _judge(
        self, model: SearchModel, rows: _Rows, sel: Tensor, logits: Tensor, done: Tensor, x_out: Tensor
    ) -> Tensor:
        """Judge rows `sel` (iterates fresh from a step, with their `logits`); record successes within eps.

        A success within eps marks its point done (first row wins). An adversarial iterate farther than
        eps takes the backward step towards x_0 (as the original does), so its gradient must be taken
        again before it steps: those rows are returned as stale (a bool per row of `sel`).
        """
        cfg = self.config
        ys = rows.y[sel]
        adv = logits.argmax(1) != ys
        if cfg.search_dtype != "fp32" and bool(adv.any()):
            ai = adv.nonzero().squeeze(1)  # a bf16 success counts only if a fresh fp32 forward agrees
            adv[ai] = model.verdict_logits(rows.x[sel[ai]]).argmax(1) != ys[ai]
        rows.fresh[sel] = False
        stale = torch.zeros_like(adv)
        if not bool(adv.any()):
            return stale
        ai = adv.nonzero().squeeze(1)
        ri = sel[ai]
        within = _dist((rows.x[ri] - rows.x0[ri]).flatten(1), cfg.norm) <= cfg.eps
        wi = ri[within & ~done[rows.pid[ri]]]
        if wi.numel() > 0:
            first = torch.full_like(done, len(rows), dtype=torch.long)
            first.scatter_reduce_(0, rows.pid[wi], wi, reduce="amin")  # one row per point: the first
            wi = first[first < len(rows)]
            x_out[rows.pid[wi]] = rows.x[wi]
            done[rows.pid[wi]] = True
        back = ri[~within]
        rows.x[back] = rows.x0[back] + cfg.beta * (rows.x[back] - rows.x0[back])
        stale[ai[~within]] = True
        return stale

    def _step(self, rows: _Rows, f: Tensor, grad: Tensor, ready: Tensor) -> None:
        """Eq. (9) for the rows in `ready`: project x_i and x_0 on the linearised boundary and combine."""
        cfg = self.config
        ri = ready.nonzero().squeeze(1)
        if ri.numel() == 0:
            return
        x1, x0 = rows.x[ri].flatten(1), rows.x0[ri].flatten(1)
        w = grad[ri].flatten(1)
        b = (w * x1).sum(1) - f[ri]  # hyperplane <w, z> = b: f(x_i) + <w, z - x_i> = 0
        d = project_hyperplane_box(torch.cat([x1, x0]), torch.cat([w, w]), torch.cat([b, b]), cfg.norm)
        d1, d0 = d[: ri.numel()], d[ri.numel() :]
        a1 = _dist(d1, cfg.norm).clamp_min(1e-8)
        a0 = _dist(d0, cfg.norm).clamp_min(1e-8)
        alpha = (a1 / (a1 + a0)).clamp(0.0, cfg.alpha_max)[:, None]
        x_new = ((1 - alpha) * (x1 + cfg.eta * d1) + alpha * (x0 + cfg.eta * d0)).clamp(0.0, 1.0)
        rows.x[ri] = x_new.view_as(rows.x[ri])
        rows.pred_adv[ri] = f[ri] + (w * (x_new - x1)).sum(1) > 0  # the linear model's verdict on the step
        rows.n_done[ri] += 1
        rows.fresh[ri] = True


def _take(queue: deque[tuple[_Job, int]], k: int, done: Tensor) -> list[tuple[_Job, int]]:
    """Pop up to k jobs whose point is not yet fooled."""
    out: list[tuple[_Job, int]] = []
    fooled = done.tolist()
    while queue and len(out) < k:
        job = queue.popleft()
        if not fooled[job[1]]:
            out.append(job)
    return out


@dataclass(frozen=True)
class FABTConfig(FABConfig):
    """FAB-T: targeted FAB, AutoAttack "standard" settings (9 targets x 100 iterations, 1 restart)."""


@ATTACKS.register("fab-t")
class FABTargeted(_FABBase):
    """Targeted FAB against each of the top `n_target_classes` wrong classes."""

    config_cls = FABTConfig
    config: FABTConfig

    def _jobs(self, n_classes: int) -> list[_Job]:
        n_targets = min(self.config.n_target_classes, n_classes - 1)
        if n_targets < self.config.n_target_classes:
            log.warning("fab-t: only %d target classes exist; using %d", n_classes - 1, n_targets)
        # target-major, like the reference (all points against target 2 first, then 3, ...)
        return [_Job(rank, r) for rank in range(2, n_targets + 2) for r in range(self.config.n_restarts)]

    def _boundary(self, model: SearchModel, rows: _Rows) -> tuple[Tensor, Tensor, Tensor]:
        with torch.enable_grad():
            x_req = rows.x.detach().requires_grad_(True)
            logits = model(x_req)
            f = logits.gather(1, rows.target[:, None]).squeeze(1) - logits.gather(1, rows.y[:, None]).squeeze(1)
            (grad,) = torch.autograd.grad(f.sum(), x_req)
        return logits.detach(), f.detach(), grad.detach()


@dataclass(frozen=True)
class FABUntargetedConfig(FABConfig):
    """Untargeted FAB, AutoAttack "plus" settings (5 restarts x 100 iterations)."""

    n_restarts: int = 5


@ATTACKS.register("fab")
class FAB(_FABBase):
    """Untargeted FAB: each step heads for the closest linearised boundary (one backward per class)."""

    config_cls = FABUntargetedConfig
    config: FABUntargetedConfig

    def _jobs(self, n_classes: int) -> list[_Job]:
        return [_Job(None, r) for r in range(self.config.n_restarts)]

    def _boundary(self, model: SearchModel, rows: _Rows) -> tuple[Tensor, Tensor, Tensor]:
        with torch.enable_grad():
            x_req = rows.x.detach().requires_grad_(True)
            logits = model(x_req)
            n_classes = logits.shape[1]
            z_y = logits.gather(1, rows.y[:, None])
            grads = []
            for k in range(n_classes):  # the Jacobian, one class at a time: f_k = z_k - z_y
                (g,) = torch.autograd.grad((logits[:, k : k + 1] - z_y).sum(), x_req, retain_graph=k < n_classes - 1)
                grads.append(g.flatten(1))
        f_all = (logits - z_y).detach()  # (R, C)
        g_all = torch.stack(grads, 1)  # (R, C, D)
        dual = g_all.abs().sum(2) if self.config.norm == "linf" else g_all.norm(dim=2)
        dist = f_all.abs() / (dual + 1e-12)
        dist.scatter_(1, rows.y[:, None], float("inf"))  # the true class is no boundary
        k_min = dist.argmin(1)
        f = f_all.gather(1, k_min[:, None]).squeeze(1)
        grad = g_all[torch.arange(len(rows), device=k_min.device), k_min].view_as(rows.x)
        return logits.detach(), f, grad


__all__ = ["FAB", "FABConfig", "FABTConfig", "FABTargeted", "FABUntargetedConfig", "project_hyperplane_box"]
