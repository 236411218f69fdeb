"""`evaluate`: clean and robust accuracy of a model, per-attack breakdown, per-point flags, sanity flags.

    result = evaluate(model, x, y, attack="autoattack", eps=8 / 255)      # AutoAttack "standard"
    result.robust_acc, result.per_attack["apgd-t"]["seconds"], result.flags["zero_gradients"].fired
    result = evaluate(model, test_loader, normalize=(mean, std), device=["cuda:0", "cuda:1"])

The data may be (x, y) tensors, a DataLoader or a Dataset (`robustperf.evaluation.inputs`); a model that
expects normalised inputs is wrapped with ``normalize=(mean, std)`` so the attack works in pixel space.

Every attack (the AutoAttack cascade, or any registered attack such as "pgd") runs through the cascade
of `robustperf.attacks.autoattack`, so batching, fp32 re-checks of every success, per-point flags and
resumable state work the same for all of them. With `out_dir`, the state lives in `out_dir/state*`, and
`out_dir/result.json` plus `out_dir/adversarial.npz` (the misclassified adversarial points with their
clean originals, for the human study of REFERENCE.md section 2) are written at the end.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robustperf.attacks import checks
from robustperf.attacks.autoattack import AutoAttack, AutoAttackConfig, AutoAttackResult
from robustperf.attacks.sharding import Shard
from robustperf.evaluation.inputs import Devices, as_tensors, place, with_normalize
from robustperf.store.io import write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
ADV_FILE = "adversarial.npz"


class EvaluationError(ValueError):
    """Raised for invalid evaluation arguments; the message names the fix."""


@dataclass(frozen=True)
class EvalResult:
    """Outcome of `evaluate`.

    Attributes:
        clean_acc: accuracy on the clean points.
        robust_acc: point-wise worst case over the attacks, over all N points.
        per_attack: {stage: {robust_acc (cumulative after the stage), seconds, n_fooled, n_forward,
            n_backward}}, in cascade order.
        robust_flags: (N,) bool on CPU, True where the point survived every attack.
        clean_flags: (N,) bool on CPU, True where the clean prediction is right.
        flags: sanity flags by name (see `robustperf.attacks.checks`).
        seconds: wall-clock seconds of the attacks (this call; sanity checks excluded).
        attack, version, eps, norm, n_examples, seed: what was run.
        per_eps: {eps: summary dict} when several eps were evaluated (includes `eps`).
        x_adv: (N, ...) adversarial examples on CPU (clean point where no attack succeeded).
        y_adv: (N,) predictions at x_adv.
    """

    clean_acc: float
    robust_acc: float
    per_attack: dict[str, dict[str, float]]
    robust_flags: Tensor
    clean_flags: Tensor
    flags: dict[str, checks.Flag]
    seconds: float
    attack: str
    version: str
    eps: float
    norm: str
    n_examples: int
    seed: int
    per_eps: dict[float, dict[str, Any]] = field(default_factory=dict)
    x_adv: Tensor | None = None
    y_adv: Tensor | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (no tensors): what goes into result.json's `evaluations`."""
        return {
            "attack": self.attack,
            "version": self.version,
            "eps": self.eps,
            "norm": self.norm,
            "n_examples": self.n_examples,
            "seed": self.seed,
            "clean_acc": self.clean_acc,
            "robust_acc": self.robust_acc,
            "per_attack": self.per_attack,
            "seconds": self.seconds,
            "flags": {name: f.to_dict() for name, f in self.flags.items()},
            "any_flag": any(f.fired for f in self.flags.values()),
            "per_eps": {str(e): v for e, v in self.per_eps.items()},
        }


def _cascade_config(
    attack: str | Sequence[str], version: str, eps: float, norm: str, seed: int, search_dtype: str,
    attack_params: Mapping[str, Mapping[str, Any]] | None,
) -> tuple[AutoAttackConfig, str, str]:  # fmt: skip
    """The cascade config for an attack name ("autoattack", "pgd", ...) or a list of names."""
    params = dict(attack_params or {})
    if isinstance(attack, str) and attack == "autoattack":
        cfg = AutoAttackConfig(eps=eps, norm=norm, seed=seed, search_dtype=search_dtype, version=version,
                               attack_params=params)  # fmt: skip
        return cfg, "autoattack", version
    names = (attack,) if isinstance(attack, str) else tuple(attack)
    if not names:
        raise EvaluationError('attack must be "autoattack", a registered attack name or a non-empty list of names')
    from robustperf.attacks.base import ATTACKS

    for n in names:
        ATTACKS.get(n)  # unknown names fail here, listing the registered attacks
    cfg = AutoAttackConfig(eps=eps, norm=norm, seed=seed, search_dtype=search_dtype, version="custom",
                           attacks=names, attack_params=params)  # fmt: skip
    return cfg, "+".join(names), "custom"


@dataclass(frozen=True)
class EvalSpec:
    """What an evaluation measures: the threat model, the attack and its settings (not where or how fast).

    Attributes:
        attack: "autoattack", a registered attack name ("pgd", "apgd-ce", ...) or a sequence of names run
            as a cascade.
        eps: radius of the threat model in [0, 1] pixel units.
        norm: "linf" or "l2".
        version: AutoAttack version ("standard", "plus", "rand"); only used with attack="autoattack".
        seed: seed of every attack's own generator (the global RNG is untouched).
        eps_list: further eps values to evaluate in the same call (adds `per_eps` and the eps flag).
        search_dtype: "fp32", or "bf16" to search in bf16; verdicts are always fp32.
        attack_params: per-stage parameter overrides, e.g. {"square": {"n_queries": 1000}}.
        sanity_checks: run the sanity flags of `robustperf.attacks.checks`.
    """

    attack: str | tuple[str, ...] = "autoattack"
    eps: float = 8 / 255
    norm: str = "linf"
    version: str = "standard"
    seed: int = 0
    eps_list: tuple[float, ...] = ()
    search_dtype: str = "fp32"
    attack_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sanity_checks: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.attack, str):
            object.__setattr__(self, "attack", tuple(self.attack))
        object.__setattr__(self, "eps_list", tuple(float(e) for e in self.eps_list or ()))
        object.__setattr__(self, "attack_params", dict(self.attack_params or {}))

    @classmethod
    def of(cls, spec: EvalSpec | None, settings: Mapping[str, Any]) -> EvalSpec:
        """``spec`` (or the defaults) with ``settings`` laid over it; a misspelled setting names the valid ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise EvaluationError(f"evaluate() has no setting {', '.join(unknown)}; the settings are "
                                  f"{', '.join(sorted(names))} (pass several attacks as attack=[...])")
        return replace(spec or cls(), **settings)


def evaluate(
    model: nn.Module,
    x: Tensor | Any,
    y: Tensor | None = None,
    spec: EvalSpec | None = None,
    *,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    max_examples: int | None = None,
    batch_size: int = 500,
    device: Devices = None,
    channels_last: bool | None = None,
    on_batch: Callable[[str, int, int], None] | None = None,
    out_dir: str | Path | None = None,
    save_outputs: bool = True,
    shard: Shard | None = None,
    **settings: Any,
) -> EvalResult:
    """Evaluate `model` on (x, y) under an attack; the model is put in eval mode and restored after.

    What is measured is an `EvalSpec` (``spec``, or its fields as keywords: ``attack``, ``eps``, ``norm``,
    ``version``, ``seed``, ``eps_list``, ``search_dtype``, ``attack_params``, ``sanity_checks``; keywords
    override ``spec``); the other keywords say how it runs and where results go.

    Args:
        model: maps images in [0, 1] to logits (or normalised images, with `normalize`).
        x: (N, C, H, W) images in [0, 1]; or a DataLoader / Dataset of (image, label) pairs, then no `y`.
        y: (N,) integer labels (tensors only).
        spec: the evaluation (default: AutoAttack standard at Linf 8/255, seed 0).
        normalize: (mean, std) per channel when the model expects normalised inputs: it is wrapped so the
            attack and the eps-ball stay in [0, 1] pixel space.
        max_examples: evaluate only the first this many points.
        batch_size: points per attack call.
        device: where to run (default: the model's device): one device, or a list of CUDA devices the
            batches are split over (data parallel); the model is moved there.
        channels_last: run convolutions in channels-last memory format (None: on CUDA with image inputs);
            the model is returned to the default format afterwards.
        on_batch: progress callback(stage label, batch index, number of batches).
        out_dir: folder for resumable state and the final result.json / adversarial.npz; None keeps
            nothing on disk.
        save_outputs: with `out_dir`, also write result.json and adversarial.npz there (callers that
            store them elsewhere, like the CLI, pass False and call `save_result`).
        shard: this process's share of the attack batches when several processes evaluate together
            (`robustperf.attacks.sharding`): each gets the whole result, equal to one process's; only
            rank 0 writes result.json / adversarial.npz.
        **settings: `EvalSpec` fields.

    Returns:
        EvalResult.

    Raises:
        EvaluationError: mismatched x and y, bad batch size, an empty data set or an unknown setting.
        AttackConfigError / RegistryError: an invalid attack configuration or an unknown attack name.
    """
    s = EvalSpec.of(spec, settings)
    x, y = as_tensors(x, y, max_examples)
    _check_inputs(x, y, batch_size)
    model, placed = place(with_normalize(model, normalize), device)
    dev = placed if placed is not None else _model_device(model)
    model = model.to(dev)
    was_training = model.training
    model.eval()
    use_cl = channels_last if channels_last is not None else (dev.type == "cuda" and x.dim() == 4)
    if use_cl:  # faster convolutions on tensor cores (REFERENCE.md section 6); numerics of the verdicts unchanged
        model.to(memory_format=torch.channels_last)
    try:
        all_eps = sorted({float(s.eps), *s.eps_list})
        runs: dict[float, tuple[AutoAttackResult, AutoAttackConfig]] = {}
        for e in all_eps:
            cfg, attack_name, version_used = _cascade_config(
                s.attack, s.version, e, s.norm, s.seed, s.search_dtype, s.attack_params
            )
            sub = _state_dir(out_dir, e, float(s.eps), len(all_eps))
            runs[e] = (AutoAttack(cfg).run(model, x, y, batch_size=batch_size, device=dev, state_dir=sub,
                                           on_batch=on_batch, shard=shard), cfg)  # fmt: skip
        main, _ = runs[float(s.eps)]
        flags = (_sanity_flags(model, x, y, main, runs, s.eps, s.norm, s.seed, batch_size, dev)
                 if s.sanity_checks else {})
    finally:
        model.train(was_training)
        if use_cl:
            model.to(memory_format=torch.contiguous_format)
    result = _to_result(main, flags, attack_name, version_used, float(s.eps), s.norm, s.seed, runs)
    if out_dir is not None and save_outputs and (shard is None or shard.rank == 0):
        save_result(result, Path(out_dir), x, y)
    return result


def _check_inputs(x: Tensor, y: Tensor, batch_size: int) -> None:
    if x.shape[0] != y.shape[0]:
        raise EvaluationError(f"x has {x.shape[0]} points but y has {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise EvaluationError("no points to evaluate: pass at least one (x, y) pair")
    if batch_size < 1:
        raise EvaluationError(f"batch_size must be >= 1, got {batch_size}")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise EvaluationError("x must lie in [0, 1] (normalisation belongs inside the model)")


def _model_device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _state_dir(out_dir: str | Path | None, e: float, main_eps: float, n_eps: int) -> Path | None:
    if out_dir is None:
        return None
    base = Path(out_dir)
    return base / "state" if n_eps == 1 or e == main_eps else base / f"state_eps_{e:.6g}"


def _sanity_flags(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    main: AutoAttackResult,
    runs: Mapping[float, tuple[AutoAttackResult, AutoAttackConfig]],
    eps: float,
    norm: str,
    seed: int,
    batch_size: int,
    dev: torch.device,
) -> dict[str, checks.Flag]:
    """The flags of `robustperf.attacks.checks`, measured on the first batch (at most 256 points)."""
    n = min(batch_size, 256, int(x.shape[0]))
    xb, yb = x[:n].to(dev), y[:n].to(dev)
    flags = [
        checks.check_randomized(model, xb),
        checks.check_softmax_output(model, xb),
        checks.check_zero_gradients(model, xb, yb),
        checks.check_square_beats_white_box([(s.label, s.robust_acc) for s in main.stages]),
        checks.check_eps_monotone({e: r.robust_acc for e, (r, _) in runs.items()}),
        checks.check_pgd_vs_fgsm(*checks.pgd_and_fgsm_accuracy(model, xb, yb, eps=eps, norm=norm, seed=seed)),
    ]
    for f in flags:
        if f.fired:
            log.warning("sanity flag %s: %s (%s)", f.name, f.detail, checks.FLAG_DOCS[f.name])
    return {f.name: f for f in flags}


def _stage_dict(res: AutoAttackResult) -> dict[str, dict[str, float]]:
    return {
        s.label: {
            "robust_acc": s.robust_acc,
            "seconds": s.seconds,
            "n_fooled": s.n_fooled,
            "n_forward": s.n_forward,
            "n_backward": s.n_backward,
        }  # fmt: skip
        for s in res.stages
    }


def _to_result(
    main: AutoAttackResult,
    flags: dict[str, checks.Flag],
    attack: str,
    version: str,
    eps: float,
    norm: str,
    seed: int,
    runs: Mapping[float, tuple[AutoAttackResult, AutoAttackConfig]],
) -> EvalResult:
    per_eps = {}
    if len(runs) > 1:
        per_eps = {
            e: {
                "clean_acc": r.clean_acc,
                "robust_acc": r.robust_acc,
                "seconds": r.seconds,
                "per_attack": _stage_dict(r),
            }
            for e, (r, _) in sorted(runs.items())
        }
    return EvalResult(
        clean_acc=main.clean_acc,
        robust_acc=main.robust_acc,
        per_attack=_stage_dict(main),
        robust_flags=main.robust.detach().cpu(),
        clean_flags=main.clean_correct.detach().cpu(),
        flags=flags,
        seconds=sum(r.seconds for r, _ in runs.values()),
        attack=attack,
        version=version,
        eps=eps,
        norm=norm,
        n_examples=int(main.robust.numel()),
        seed=seed,
        per_eps=per_eps,
        x_adv=main.x_adv.detach().cpu(),
        y_adv=main.y_adv.detach().cpu(),
    )


def save_result(result: EvalResult, out_dir: Path, x: Tensor, y: Tensor, stem: str | None = None) -> tuple[Path, Path]:
    """Write the summary JSON and the npz of per-point flags and adversarial/clean pairs.

    The npz holds `robust_flags` and `clean_flags` for all N points, and for each point fooled by the
    attack (clean-correct, not robust): `index`, `x_adv`, `x_clean`, `y` (true label) and `y_adv`
    (prediction at x_adv).

    Returns:
        (json path, npz path).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / (f"{stem}.json" if stem else RESULT_FILE)
    npz_path = out_dir / (f"{stem}.npz" if stem else ADV_FILE)
    fooled = (result.clean_flags & ~result.robust_flags).nonzero().squeeze(1)
    arrays: dict[str, np.ndarray] = {
        "robust_flags": result.robust_flags.numpy(),
        "clean_flags": result.clean_flags.numpy(),
        "index": fooled.numpy(),
        "y": y.detach().cpu()[fooled].numpy(),
    }
    if result.x_adv is not None and result.y_adv is not None:
        arrays["x_adv"] = result.x_adv[fooled].float().numpy()
        arrays["y_adv"] = result.y_adv[fooled].numpy()
        arrays["x_clean"] = x.detach().cpu()[fooled].float().numpy()
    buffer = io.BytesIO()
    # numpy's stub lets **kwds also bind `allow_pickle: bool`, so mypy rejects any **dict of arrays
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    write_bytes_atomic(npz_path, buffer.getvalue())
    write_json_atomic(json_path, result.summary())
    return json_path, npz_path


__all__ = ["ADV_FILE", "RESULT_FILE", "EvalResult", "EvalSpec", "EvaluationError", "evaluate", "save_result"]
