"""Per-sample training FLOPs of a configured run, and the JSON cost block of a run record.

`train_flops_per_sample` counts one training iteration of the configured method
with `FlopCounter` on a meta-device copy of the model (REFERENCE.md section 3:
one iteration per (architecture, input shape, method, attack steps) is enough,
and on the meta device it is free). The counted FLOPs divided by the forward
FLOPs give the method's forward-pass equivalents, which the analytic model
(`robustperf.cost.analytic`) cross-checks: 23 for PGD-10 AT, 27 for TRADES-10.

`run_cost` turns what a run measured (seconds, samples, FLOPs per sample,
joules) into the record's ``cost`` dict with kWh, CO2, USD and the constants used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from robustperf.cost import analytic
from robustperf.cost.conversions import (
    electricity_usd,
    gpu_hours,
    gpu_hours_usd,
    joules_to_kwh,
    kwh_to_co2_kg,
    resolve_constants,
)

if TYPE_CHECKING:
    import torch

    from robustperf.config import CostConfig, RunConfig
    from robustperf.cost.flops import FlopCount

log = logging.getLogger(__name__)

COUNT_BATCH = 2  # samples in the counted meta-device batch; FLOPs are linear in it


@dataclass(frozen=True)
class FlopsBreakdown:
    """Training FLOPs per image for one (architecture, input shape, method, attack steps).

    Attributes:
        forward_flops: FLOPs of one inference forward pass per image (counted).
        passes: forward-pass equivalents per image per training step (counted / forward_flops).
        per_sample: training FLOPs per image seen (forward_flops * passes).
        method_note: what was counted and how.
        attack_flops: per image, the part spent inside the attack (input-gradient steps).
        forward_part: per image, FLOPs of forward-phase ops in the iteration.
        backward_part: per image, FLOPs of backward-phase ops in the iteration.
        analytic_passes: the analytic model's k_method for the same method (None if it has none).
        by_op: per image FLOPs of the iteration, keyed ``"phase/op"``.
    """

    forward_flops: float
    passes: float
    per_sample: float
    method_note: str
    attack_flops: float = 0.0
    forward_part: float = 0.0
    backward_part: float = 0.0
    analytic_passes: float | None = None
    by_op: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "forward_flops": self.forward_flops,
            "passes": self.passes,
            "per_sample": self.per_sample,
            "attack_flops": self.attack_flops,
            "forward_part": self.forward_part,
            "backward_part": self.backward_part,
            "analytic_passes": self.analytic_passes,
            "method_note": self.method_note,
        }


# ---------------------------------------------------------------------------- canonical method steps
# The FLOP-relevant sequence of each method (which passes run, with which gradients).
# The loss details do not change FLOPs: only matmuls/convs/attention are counted.


@dataclass(frozen=True)
class StepSpec:
    """What a counted training iteration runs: method, attack steps and size, TRADES/MART beta, AWP."""

    method: str
    n_steps: int
    eps: float
    step_size: float
    beta: float
    awp: bool


def _attack(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, spec: StepSpec, target_probs: torch.Tensor | None = None
) -> torch.Tensor:
    """PGD-k with gradients w.r.t. the input only (eval-mode BatchNorm), CE or TRADES-KL loss."""
    import torch
    import torch.nn.functional as nnf

    x_adv = (x + torch.empty_like(x).uniform_(-spec.eps, spec.eps)).clamp(0, 1).detach()
    for _ in range(spec.n_steps):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        if spec.method == "trades_original":  # the original code re-runs the clean forward every step
            target_probs = nnf.softmax(model(x), dim=1)
        if target_probs is None:
            loss = nnf.cross_entropy(logits, y)
        else:
            loss = nnf.kl_div(nnf.log_softmax(logits, dim=1), target_probs, reduction="batchmean")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + spec.step_size * grad.sign(), x - spec.eps), x + spec.eps)
        x_adv = x_adv.clamp(0, 1)
    return x_adv.detach()


def _outer_loss(
    model: torch.nn.Module, x: torch.Tensor, x_adv: torch.Tensor | None, y: torch.Tensor, spec: StepSpec
) -> torch.Tensor:
    """The method's training loss (forward passes with parameter gradients enabled)."""
    import torch.nn.functional as nnf

    if x_adv is None:  # standard training
        return nnf.cross_entropy(model(x), y)
    if spec.method == "trades_original":  # three forwards: clean CE, and KL's two sides
        clean_target = nnf.softmax(model(x), dim=1)
        kl = nnf.kl_div(nnf.log_softmax(model(x_adv), dim=1), clean_target, reduction="batchmean")
        return nnf.cross_entropy(model(x), y) + spec.beta * kl
    if spec.method in ("trades", "mart"):
        logits, adv_logits = model(x), model(x_adv)
        kl = nnf.kl_div(nnf.log_softmax(adv_logits, dim=1), nnf.softmax(logits, dim=1), reduction="batchmean")
        return nnf.cross_entropy(logits if spec.method != "mart" else adv_logits, y) + spec.beta * kl
    return nnf.cross_entropy(model(x_adv), y)


def canonical_step(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: StepSpec,
    on_attack_done: Callable[[], None] | None = None,
) -> None:
    """One training iteration of ``spec.method`` (attack, outer loss, backward; AWP's proxy pass)."""
    import torch
    import torch.nn.functional as nnf

    x_adv = None
    if spec.method != "standard":
        model.eval()
        target = None
        if spec.method == "trades":
            with torch.no_grad():  # TRADES: clean probabilities once (REFERENCE.md s.3, 2kF + 7F)
                target = nnf.softmax(model(x), dim=1)
        steps = replace(spec, n_steps=1) if spec.method in ("fast_at", "fgsm") else spec
        x_adv = _attack(model, x, y, steps, target)
    if on_attack_done is not None:
        on_attack_done()
    model.train()
    if spec.awp:  # Wu et al. 2020: the proxy model's loss, forward + backward, before the real step
        _outer_loss(model, x, x_adv, y, spec).backward()
    _outer_loss(model, x, x_adv, y, spec).backward()


def _spec_from_config(cfg: RunConfig) -> StepSpec:
    atk = cfg.method.attack
    return StepSpec(cfg.method.name, atk.n_steps, atk.eps, atk.step_size, cfg.method.beta, cfg.method.awp is not None)


def _per_image_ops(count: FlopCount, batch: int) -> dict[str, float]:
    return {f"{phase}/{op}": n / batch for (phase, op), n in count.by_op.items()}


def _count_real_method(
    meta: torch.nn.Module, cfg: RunConfig, x: torch.Tensor, y: torch.Tensor
) -> tuple[FlopCount, FlopCount]:
    """Run the training engine's own step (``robustperf.training.methods``) on the meta model.

    Does what the loop does per batch: ``step``, ``loss.backward()``, ``after_backward``. AWP is
    counted in its active phase (after warm-up). The attack part is the FLOPs inside ``perturb``.
    """
    from robustperf.cost.flops import FlopCount, FlopCounter
    from robustperf.training.methods import create_method

    method = create_method(cfg.method)
    if cfg.method.awp is not None:
        method.set_epoch(cfg.method.awp.warmup_epochs)
    inner = getattr(method, "inner", method)
    attack_parts: list[FlopCount] = []
    with FlopCounter() as counter:
        if hasattr(inner, "perturb"):
            perturb = inner.perturb

            def counted_perturb(*args: Any, **kwargs: Any) -> Any:
                before = counter.result().total
                out = perturb(*args, **kwargs)
                attack_parts.append(_difference(counter.result(), before))
                return out

            inner.perturb = counted_perturb  # this method object is ours alone
        meta.train()
        out = method.step(meta, x, y)
        out.loss.backward()
        method.after_backward(meta)
    attack = attack_parts[0] if attack_parts else FlopCount(0, 0)
    return counter.result(), attack


def _difference(after: FlopCount, before_total: int) -> FlopCount:
    from robustperf.cost.flops import FlopCount

    return FlopCount(after.total - before_total, 0)


def _count_canonical(
    meta: torch.nn.Module, spec: StepSpec, x: torch.Tensor, y: torch.Tensor
) -> tuple[FlopCount, FlopCount]:
    from robustperf.cost.flops import FlopCounter

    if spec.method not in analytic.method_names():
        raise analytic.UnknownMethodError(
            f"cannot count FLOPs of method {spec.method!r}; known: {analytic.method_names()} "
            "(or set cost.count_flops=false)"
        )
    attack_part: list[FlopCount] = []
    with FlopCounter() as counter:
        canonical_step(meta, x, y, spec, on_attack_done=lambda: attack_part.append(counter.result()))
    return counter.result(), attack_part[0]


def count_training_step(
    model: torch.nn.Module,
    cfg: RunConfig,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int = COUNT_BATCH,
    use_engine: bool = True,
) -> tuple[FlopCount, FlopCount, str]:
    """Count one iteration of ``cfg.method`` on a meta copy of ``model``.

    The training engine's own method step runs when it is importable and registered
    (``use_engine``); otherwise, or if it cannot run on the meta device, `canonical_step`
    (the same sequence of passes) is counted.

    Returns:
        (whole iteration, attack part, what ran) for ``batch_size`` images.
    """
    import torch

    from robustperf.cost.flops import meta_copy

    x = torch.rand((batch_size, *input_shape), device="meta")
    y = torch.zeros(batch_size, dtype=torch.long, device="meta")
    del num_classes  # the head's size is in the model already; kept for the contract's signature
    if use_engine and cfg.method.name != "trades_original":
        try:
            step, attack = _count_real_method(meta_copy(model), cfg, x, y)
            return step, attack, "robustperf.training.methods step"
        except ImportError:
            log.debug("training methods not importable: counting the canonical sequence")
        except Exception as exc:  # noqa: BLE001 - any failure on meta falls back, and says so
            log.warning(
                "counting %s's own step on the meta device failed (%s: %s); counting the canonical sequence instead",
                cfg.method.name,
                type(exc).__name__,
                exc,
            )
    step, attack = _count_canonical(meta_copy(model), _spec_from_config(cfg), x, y)
    return step, attack, "canonical sequence (robustperf.cost.accounting.canonical_step)"


def _analytic_passes(spec: StepSpec) -> float | None:
    try:
        return analytic.forward_equivalents(spec.method, spec.n_steps, awp=spec.awp)
    except analytic.UnknownMethodError:
        return None


def train_flops_per_sample(
    model: torch.nn.Module, cfg: RunConfig, *, input_shape: tuple[int, ...], num_classes: int
) -> FlopsBreakdown:
    """Counted training FLOPs per image seen for ``cfg``'s method on ``model``.

    The model is not touched (a weightless meta-device copy runs), so this is
    instant even for a WRN-70-16 and safe mid-training.

    Args:
        model: the model as built for the run (any device).
        cfg: run config (method name, attack steps/eps, beta, AWP).
        input_shape: one image's shape, e.g. (3, 32, 32).
        num_classes: classes of the task (the model's head already has them).
    """
    from robustperf.cost.flops import forward_flops

    fwd = forward_flops(model, input_shape, batch_size=COUNT_BATCH)
    step, attack, what = count_training_step(model, cfg, input_shape=input_shape, num_classes=num_classes)
    per_sample = step.total / COUNT_BATCH
    spec = _spec_from_config(cfg)
    note = (
        f"counted: one {spec.method} iteration (k={spec.n_steps}{', awp' if spec.awp else ''}), "
        f"{what}, robustperf FlopCounter on the meta device, batch {COUNT_BATCH}"
    )
    return FlopsBreakdown(
        forward_flops=fwd,
        passes=per_sample / fwd if fwd else 0.0,
        per_sample=per_sample,
        method_note=note,
        attack_flops=attack.total / COUNT_BATCH,
        forward_part=step.forward / COUNT_BATCH,
        backward_part=step.backward / COUNT_BATCH,
        analytic_passes=_analytic_passes(spec),
        by_op=_per_image_ops(step, COUNT_BATCH),
    )


# ---------------------------------------------------------------------------- the record's cost block


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def run_cost(
    cost_cfg: CostConfig,
    *,
    seconds: float,
    samples_seen: float,
    flops_per_sample: float | None,
    joules: float | None,
    energy_source: str,
    n_gpus: int = 1,
    peak_memory_bytes: int | None = None,
    eval_flops: float = 0.0,
) -> dict[str, Any]:
    """The JSON-ready ``cost`` block of a run record.

    Raw measurements (seconds, joules, FLOPs) are stored next to every derived figure
    and the constants (with sources) that produced it (REFERENCE.md section 3).

    Args:
        cost_cfg: the run's ``cost`` section (PUE, grid, prices).
        seconds: wall-clock training seconds.
        samples_seen: training images processed (all ranks).
        flops_per_sample: `FlopsBreakdown.per_sample` (None or NaN: not counted, stored as null).
        joules: measured device energy summed over GPUs (None: time-only meter).
        energy_source: the meter's source ("nvml", "sampling", "rapl", "fake", "none", or
            "estimate: <power and why>"); stored with ``energy_method`` (metered/estimated/fake/none).
        n_gpus: devices used (for GPU-hours).
        peak_memory_bytes: peak accelerator memory, if measured.
        eval_flops: FLOPs spent on evaluation during training (reported beside, not inside, train_flops).
    """
    from robustperf.cost.energy import energy_method

    consts = resolve_constants(cost_cfg)
    per_sample = _finite(flops_per_sample)  # None when FLOPs were not counted (cost.count_flops=false)
    train_flops = None if per_sample is None else per_sample * float(samples_seen)
    evals = _finite(eval_flops)
    hours = gpu_hours(seconds, n_gpus=n_gpus)
    kwh = co2 = usd_energy = None
    if joules is not None:
        kwh = joules_to_kwh(joules, pue=consts.pue.value)
        co2 = kwh_to_co2_kg(kwh, g_per_kwh=consts.co2_g_per_kwh.value)
        usd_energy = electricity_usd(kwh, usd_per_kwh=consts.usd_per_kwh.value)
    usd_cloud = None
    if consts.usd_per_gpu_hour is not None:
        usd_cloud = gpu_hours_usd(hours, usd_per_gpu_hour=consts.usd_per_gpu_hour.value)
    return {
        "train_flops": train_flops,
        "flops_per_sample": per_sample,
        "samples_seen": float(samples_seen),
        "eval_flops": evals,
        "total_flops": None if train_flops is None else train_flops + (evals or 0.0),
        "seconds": float(seconds),
        "n_gpus": int(n_gpus),
        "gpu_hours": hours,
        "energy_joules": None if joules is None else float(joules),
        "energy_kwh": kwh,
        "co2_kg": co2,
        "usd": usd_energy if usd_energy is not None else usd_cloud,
        "usd_electricity": usd_energy,
        "usd_gpu_hours": usd_cloud,
        "energy_source": energy_source,
        "energy_method": energy_method(energy_source) if joules is not None else "none",
        "peak_memory_bytes": peak_memory_bytes,
        "constants": consts.to_dict(),
    }


# ---------------------------------------------------------------------------- evaluation cost


@dataclass(frozen=True)
class EvalFlops:
    """FLOPs of an evaluation, from counted per-image costs.

    Attributes:
        forward_flops: one forward pass per image.
        gradient_flops: one input-gradient evaluation (forward + backward to the input) per image.
        total: FLOPs of the whole evaluation.
        note: how ``total`` was obtained.
    """

    forward_flops: float
    gradient_flops: float
    total: float
    note: str


def _per_image_costs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> tuple[float, float]:
    from robustperf.cost.flops import forward_flops, input_gradient_flops

    fwd = forward_flops(model, input_shape, batch_size=COUNT_BATCH)
    grad = input_gradient_flops(model, input_shape, batch_size=COUNT_BATCH).total / COUNT_BATCH
    return fwd, grad


def pgd_eval_flops(
    model: torch.nn.Module, input_shape: tuple[int, ...], *, n_examples: int, n_steps: int, restarts: int = 1
) -> EvalFlops:
    """FLOPs of a clean + PGD-k evaluation of ``n_examples`` images (every image runs every step).

    Per image: one clean forward, then per restart k input-gradient steps and one scoring forward.
    """
    fwd, grad = _per_image_costs(model, input_shape)
    per_image = fwd + restarts * (n_steps * grad + fwd)
    return EvalFlops(
        fwd,
        grad,
        per_image * n_examples,
        f"clean + PGD-{n_steps} x {restarts} restart(s) on {n_examples} images, counted per image",
    )


def eval_flops_from_counts(
    model: torch.nn.Module, input_shape: tuple[int, ...], *, n_forward_images: float, n_gradient_images: float
) -> EvalFlops:
    """FLOPs of an evaluation as actually run (AutoAttack, early-stopping PGD).

    Args:
        model: the evaluated model.
        input_shape: one image's shape.
        n_forward_images: images passed through plain forwards, summed over all calls
            (e.g. batch sizes of every forward query the attacks made).
        n_gradient_images: images passed through forward + input-gradient calls, summed.
    """
    fwd, grad = _per_image_costs(model, input_shape)
    total = fwd * n_forward_images + grad * n_gradient_images
    return EvalFlops(
        fwd, grad, total, f"recorded counts: {n_forward_images:g} image-forwards, {n_gradient_images:g} image-gradients"
    )
