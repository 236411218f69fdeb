"""The AutoAttack cascade (Croce & Hein 2020): attacks run one after another on the points still robust.

Versions (REFERENCE.md section 2; the reference is pyautoattack 0.2.0 = fra31/auto-attack):

    standard  APGD-CE (100 iter), APGD-T (9 targets x 100), FAB-T (9 targets x 100), Square (5000 queries)
    plus      APGD-CE and APGD-DLR (5 restarts each), FAB (5 restarts), Square, APGD-T, FAB-T
    rand      APGD-CE and APGD-DLR with 20 EOT gradients per step, for randomised models
    custom    any list of registered attack names

Each attack sees only the points no earlier attack fooled, in batches of `batch_size` taken in index
order; every success is re-checked here with a fresh fp32 forward pass (and the eps-ball and the box are
verified), so the robust accuracy is the point-wise worst case over the attacks and never a bf16 or
bookkeeping artefact. Every attack gets its own seed (`seed`) and draws from its own generator; the
global RNG is never touched.

With a `state_dir`, progress is written after every batch: a JSON file naming the batches done and the
points they fooled, plus one small tensor file per batch with those points' adversarial examples. A
preempted run started again with the same arguments skips what is done and, because batches are formed
from the flags at the start of each attack and seeds do not depend on the batch history, ends with the
same result as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robustperf.attacks.base import (
    ATTACKS,
    AttackConfig,
    AttackConfigError,
    AttackResult,
    BaseAttack,
    ForwardCounter,
    create_attack,
)
from robustperf.attacks.sharding import Shard
from robustperf.device import synchronize
from robustperf.store.io import read_json, write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)

VERSIONS = ("standard", "plus", "rand", "custom")
STATE_FILE = "autoattack_state.json"
_BALL_TOL = 1e-5  # float32 slack when verifying ||x_adv - x|| <= eps


@dataclass(frozen=True)
class AttackSpec:
    """One stage of the cascade: a label (used in results), a registered attack name and its parameters."""

    label: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


def version_specs(version: str, norm: str, custom: tuple[str, ...] = ()) -> list[AttackSpec]:
    """The stages of an AutoAttack version, with the reference settings (REFERENCE.md section 2).

    Args:
        version: "standard", "plus", "rand" or "custom".
        norm: the threat model; the reference uses the same stages for linf and l2 (it differs only for
            l1, which robustperf does not support), so it is accepted for completeness.
        custom: attack names for version="custom".
    """
    if version == "standard":
        return [
            AttackSpec("apgd-ce", "apgd-ce", {"n_iter": 100, "n_restarts": 1}),
            AttackSpec("apgd-t", "apgd-t", {"n_iter": 100, "n_restarts": 1, "n_target_classes": 9}),
            AttackSpec("fab-t", "fab-t", {"n_iter": 100, "n_restarts": 1, "n_target_classes": 9}),
            AttackSpec("square", "square", {"n_queries": 5000, "p_init": 0.8, "n_restarts": 1}),
        ]
    if version == "plus":
        return [
            AttackSpec("apgd-ce", "apgd-ce", {"n_iter": 100, "n_restarts": 5}),
            AttackSpec("apgd-dlr", "apgd-dlr", {"n_iter": 100, "n_restarts": 5}),
            AttackSpec("fab", "fab", {"n_iter": 100, "n_restarts": 5}),
            AttackSpec("square", "square", {"n_queries": 5000, "p_init": 0.8, "n_restarts": 1}),
            AttackSpec("apgd-t", "apgd-t", {"n_iter": 100, "n_restarts": 1, "n_target_classes": 9}),
            AttackSpec("fab-t", "fab-t", {"n_iter": 100, "n_restarts": 1, "n_target_classes": 9}),
        ]
    if version == "rand":
        return [
            AttackSpec("apgd-ce", "apgd-ce", {"n_iter": 100, "n_restarts": 1, "eot_iter": 20}),
            AttackSpec("apgd-dlr", "apgd-dlr", {"n_iter": 100, "n_restarts": 1, "eot_iter": 20}),
        ]
    if version == "custom":
        if not custom:
            raise AttackConfigError('version="custom" needs attacks=(...), e.g. ("apgd-ce", "square")')
        return [AttackSpec(name, name) for name in custom]
    raise AttackConfigError(f"unknown AutoAttack version {version!r}; use one of {', '.join(VERSIONS)}")


@dataclass(frozen=True)
class AutoAttackConfig(AttackConfig):
    """The cascade.

    Attributes:
        version: "standard", "plus", "rand" or "custom".
        attacks: the registered attack names to run, in order, for version="custom".
        attack_params: parameter overrides per stage label, e.g. {"square": {"n_queries": 1000}} or
            {"fab-t": {"max_rows": 4500}} (more rows per pass: faster on a large GPU).
    """

    version: str = "standard"
    attacks: tuple[str, ...] = ()
    attack_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.attacks and self.version != "custom":
            raise AttackConfigError(f'attacks=... is only used with version="custom" (got version={self.version!r})')
        specs = self.specs()  # raises on an unknown version
        labels = {s.label for s in specs}
        unknown = sorted(set(self.attack_params) - labels)
        if unknown:
            raise AttackConfigError(
                f"attack_params names {', '.join(unknown)}, which the cascade does not run; stages: {', '.join(labels)}"
            )

    def specs(self) -> list[AttackSpec]:
        """The stages with the overrides of `attack_params` applied."""
        out = []
        for s in version_specs(self.version, self.norm, tuple(self.attacks)):
            params = {**s.params, **self.attack_params.get(s.label, {})}
            out.append(AttackSpec(s.label, s.name, params))
        return out


@dataclass(frozen=True)
class StageResult:
    """What one stage of the cascade did.

    Attributes:
        label: stage label ("apgd-ce", "fab-t", ...).
        robust_acc: robust accuracy over all N points after this stage (cumulative, as the reference reports).
        n_fooled: points this stage fooled.
        seconds: wall-clock seconds (summed over batches, including resumed ones).
        n_forward / n_backward: images through the model forward / backward.
    """

    label: str
    robust_acc: float
    n_fooled: int
    seconds: float
    n_forward: int
    n_backward: int


@dataclass(frozen=True)
class AutoAttackResult:
    """Outcome of the cascade.

    Attributes:
        clean_correct: (N,) bool, clean prediction correct.
        robust: (N,) bool, survived every stage (point-wise worst case).
        x_adv: (N, C, H, W) adversarial example where a stage fooled the point, else the clean point.
        y_adv: (N,) prediction at x_adv.
        stages: one StageResult per stage, in order.
        seconds: total wall-clock seconds of this call (a resumed call counts only its own time).
    """

    clean_correct: Tensor
    robust: Tensor
    x_adv: Tensor
    y_adv: Tensor
    stages: list[StageResult]
    seconds: float

    @property
    def clean_acc(self) -> float:
        return float(self.clean_correct.float().mean().item()) if self.clean_correct.numel() else 0.0

    @property
    def robust_acc(self) -> float:
        return float(self.robust.float().mean().item()) if self.robust.numel() else 0.0


def _fingerprint(cfg: AutoAttackConfig, x: Tensor, y: Tensor, batch_size: int) -> str:
    """Hash of what determines the result: the config, the batch size and the data."""
    h = hashlib.sha256()
    h.update(repr((cfg, batch_size, tuple(x.shape))).encode())
    h.update(x.detach().float().cpu().contiguous().numpy().tobytes())
    h.update(y.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class BatchRecord:
    """One attack on one batch of the cascade: which points it fooled and what it cost.

    Attributes:
        fooled: indices (into the evaluated set) of the points fooled, confirmed in the ball.
        seconds: wall time of the attack call and its check.
        n_forward: images run forward (the attack's and the check's).
        n_backward: images run through a backward.
        n_fooled: len(fooled).
        x_adv: the fooled points' adversarial examples, in memory right after the attack (None when the
            record was read back from the state file: they are then loaded from ``autoattack_state/``).
        y_adv: the predictions on them.
    """

    fooled: list[int]
    seconds: float
    n_forward: int
    n_backward: int
    n_fooled: int
    x_adv: Tensor | None = field(default=None, repr=False)
    y_adv: Tensor | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"fooled": self.fooled, "seconds": self.seconds, "n_forward": self.n_forward,
                "n_backward": self.n_backward, "n_fooled": self.n_fooled}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchRecord:
        return cls([int(i) for i in data["fooled"]], float(data["seconds"]), int(data["n_forward"]),
                   int(data["n_backward"]), int(data["n_fooled"]))


class _State:
    """Progress of one cascade on disk: which (stage, batch) pairs are done and what they fooled.

    A sharded cascade (`robustperf.attacks.sharding`) writes one file per rank; all of them are read.
    """

    def __init__(self, state_dir: Path | None, fingerprint: str, rank: int | None = None) -> None:
        self.dir = state_dir
        self.fingerprint = fingerprint
        self.file = STATE_FILE if rank is None else f"autoattack_state.rank{rank}.json"
        self.clean_correct: list[bool] | None = None
        self.batches: dict[str, BatchRecord] = {}  # "stage:batch" -> record
        if state_dir is not None:
            for path in sorted(state_dir.glob("autoattack_state*.json")):
                self._load(path)

    def _load(self, path: Path) -> None:
        data = read_json(path)
        if data.get("fingerprint") != self.fingerprint:
            raise AttackConfigError(
                f"{path} belongs to a different evaluation (other model inputs, config or batch size); "
                "delete it or use another out_dir"
            )
        self.clean_correct = [bool(c) for c in data["clean_correct"]]
        self.batches.update({key: BatchRecord.from_json(rec) for key, rec in data["batches"].items()})
        log.info("autoattack: resuming from %s (%d batches done)", path, len(self.batches))

    def save(self) -> None:
        if self.dir is None:
            return
        write_json_atomic(
            self.dir / self.file,
            {
                "fingerprint": self.fingerprint,
                "clean_correct": [int(c) for c in self.clean_correct or []],
                "batches": {key: rec.to_json() for key, rec in self.batches.items()},
            },  # fmt: skip
        )

    def adv_path(self, key: str) -> Path:
        assert self.dir is not None
        return self.dir / "autoattack_state" / f"{key.replace(':', '_')}.pt"


@ATTACKS.register("autoattack")
class AutoAttack(BaseAttack):
    """The AutoAttack cascade as an attack; `run` gives the per-stage breakdown and resumability."""

    config_cls = AutoAttackConfig
    config: AutoAttackConfig

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackResult:
        """Run the cascade on x (one batch) and return it in the attack protocol's shape."""
        out = self.run(model, x, y, batch_size=max(int(x.shape[0]), 1))
        extras = {"stages": [s.__dict__ for s in out.stages], "clean_correct": out.clean_correct}
        return AttackResult(
            out.x_adv,
            ~out.robust,
            sum(s.n_forward for s in out.stages),
            sum(s.n_backward for s in out.stages),
            out.seconds,
            extras,
        )

    def run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        batch_size: int = 500,
        device: torch.device | str | None = None,
        state_dir: str | Path | None = None,
        on_batch: Callable[[str, int, int], None] | None = None,
        shard: Shard | None = None,
    ) -> AutoAttackResult:
        """Run every stage on the points still robust.

        Args:
            model: maps [0, 1] images to logits, in the mode the caller chose (eval for evaluation).
            x: (N, C, H, W) images in [0, 1], on any device.
            y: (N,) labels.
            batch_size: points per attack call.
            device: where to attack (default: x's device); x and y move there batch by batch.
            state_dir: folder for the resumable state (None: keep nothing on disk).
            on_batch: progress callback(stage label, batch index, number of batches).
            shard: this process's share of every stage's batches (`robustperf.attacks.sharding`); every rank
                passes the same x, y and arguments and gets the whole, single-process result.

        Returns:
            AutoAttackResult with tensors on x's device.
        """
        if x.shape[0] != y.shape[0]:
            raise AttackConfigError(f"x has {x.shape[0]} points but y has {y.shape[0]} labels")
        if batch_size < 1:
            raise AttackConfigError(f"batch_size must be >= 1, got {batch_size}")
        specs = self.config.specs()
        attacks = [self._build(s) for s in specs]  # fail on bad parameters before any work
        dev = torch.device(device) if device is not None else x.device
        sdir = Path(state_dir) if state_dir is not None else None
        state = _State(sdir, _fingerprint(self.config, x, y, batch_size) if sdir is not None else "",
                       rank=shard.rank if shard is not None else None)
        synchronize(dev)
        t0 = time.perf_counter()
        x_adv = x.detach().clone()
        y_adv = torch.empty_like(y)
        clean = self._clean_pass(model, x, y, y_adv, dev, batch_size, state)
        robust = clean.clone()
        stages = []
        for spec, attack in zip(specs, attacks, strict=True):
            stages.append(
                self._stage(model, spec, attack, x, y, robust, x_adv, y_adv, dev, batch_size, state, on_batch, shard)
            )
        synchronize(dev)
        seconds = time.perf_counter() - t0
        log.info("autoattack %s: clean %.2f%%, robust %.2f%% (%.1f s)", self.config.version,
                 100 * clean.float().mean().item(), 100 * robust.float().mean().item(), seconds)  # fmt: skip
        return AutoAttackResult(clean, robust, x_adv, y_adv, stages, seconds)

    def _build(self, spec: AttackSpec) -> BaseAttack:
        cfg = self.config
        params = {"eps": cfg.eps, "norm": cfg.norm, "seed": cfg.seed, "search_dtype": cfg.search_dtype, **spec.params}
        return create_attack(spec.name, **params)

    def _clean_pass(
        self, model: nn.Module, x: Tensor, y: Tensor, y_adv: Tensor, dev: torch.device, bs: int, state: _State
    ) -> Tensor:
        """Clean predictions (fp32) in batches; the clean flags are stored with the state."""
        for i in range(0, x.shape[0], bs):
            with torch.no_grad():
                y_adv[i : i + bs] = model(x[i : i + bs].to(dev)).float().argmax(1).to(y.device)
        clean = y_adv == y
        if state.clean_correct is not None:
            stored = torch.tensor(state.clean_correct, dtype=torch.bool, device=y.device)
            if not torch.equal(stored, clean):
                log.warning("autoattack: clean predictions differ from the stored state; using the stored ones")
            clean = stored
        else:
            state.clean_correct = clean.tolist()
            state.save()
        return clean

    def _stage(
        self,
        model: nn.Module,
        spec: AttackSpec,
        attack: BaseAttack,
        x: Tensor,
        y: Tensor,
        robust: Tensor,
        x_adv: Tensor,
        y_adv: Tensor,
        dev: torch.device,
        bs: int,
        state: _State,
        on_batch: Callable[[str, int, int], None] | None,
        shard: Shard | None = None,
    ) -> StageResult:
        """Attack the points still robust at the start of the stage, batch by batch (with a `shard`: this
        rank's batches, then the others' results from the exchange)."""
        todo = robust.nonzero().squeeze(1)  # fixed at the start of the stage: resumes form the same batches
        n_batches = (todo.numel() + bs - 1) // bs
        totals = {"seconds": 0.0, "n_forward": 0.0, "n_backward": 0.0, "n_fooled": 0.0}
        mine: list[tuple[str, BatchRecord]] = []
        for b in range(n_batches):
            key = f"{spec.label}:{b}"
            idx = todo[b * bs : (b + 1) * bs]
            record = state.batches.get(key)
            if record is None and shard is not None and not shard.owns(b):
                continue  # another rank's batch: its result comes with the exchange below
            if record is None:
                record = self._attack_batch(model, attack, x, y, idx, dev, state, key)
                if shard is not None:
                    mine.append((key, _portable(record)))
            self._apply(record, state, key, x, robust, x_adv, y_adv)
            for k in totals:
                totals[k] += getattr(record, k)
            if on_batch is not None:
                on_batch(spec.label, b, n_batches)
        if shard is not None:  # the other ranks' batches: every rank ends the stage with the same flags
            for key, record in shard.exchange(mine):
                if key in state.batches:
                    continue  # this rank's own batch (or one read back from the progress files)
                self._apply(record, state, key, x, robust, x_adv, y_adv)
                for k in totals:
                    totals[k] += getattr(record, k)
        acc = float(robust.float().mean().item()) if robust.numel() else 0.0
        log.info("autoattack %s: robust %.2f%% after %s (%.1f s)", self.config.version, 100 * acc, spec.label,
                 totals["seconds"])  # fmt: skip
        return StageResult(spec.label, acc, int(totals["n_fooled"]), float(totals["seconds"]),
                           int(totals["n_forward"]), int(totals["n_backward"]))  # fmt: skip

    def _attack_batch(
        self,
        model: nn.Module,
        attack: BaseAttack,
        x: Tensor,
        y: Tensor,
        idx: Tensor,
        dev: torch.device,
        state: _State,
        key: str,
    ) -> BatchRecord:
        """Run one attack on one batch; keep only successes confirmed by a fresh fp32 forward in the ball."""
        xb, yb = x[idx].to(dev), y[idx].to(dev)
        synchronize(dev)
        t0 = time.perf_counter()
        res = attack.perturb(model, xb, yb)
        counter = ForwardCounter(model)
        with torch.no_grad():
            pred = counter(res.x_adv).float().argmax(1)
        fooled = (pred != yb) & self._in_ball(res.x_adv, xb)
        synchronize(dev)
        seconds = time.perf_counter() - t0
        fi = fooled.nonzero().squeeze(1)
        if state.dir is not None:
            buffer = io.BytesIO()
            torch.save({"x_adv": res.x_adv[fi].detach().cpu(), "y_adv": pred[fi].cpu()}, buffer)
            # the adversarial examples land before the JSON that names them
            write_bytes_atomic(state.adv_path(key), buffer.getvalue())
        return BatchRecord(idx[fi.to(idx.device)].tolist(), seconds, int(res.n_forward) + counter.forward_images,
                           int(res.n_backward), int(fi.numel()), res.x_adv[fi].detach(), pred[fi])

    def _in_ball(self, x_adv: Tensor, x: Tensor) -> Tensor:
        d = (x_adv - x).flatten(1)
        dist = d.abs().amax(1) if self.config.norm == "linf" else d.norm(dim=1)
        box = (x_adv.flatten(1).amin(1) >= 0) & (x_adv.flatten(1).amax(1) <= 1)
        return (dist <= self.config.eps + _BALL_TOL) & box

    @staticmethod
    def _apply(
        record: BatchRecord, state: _State, key: str, x: Tensor, robust: Tensor, x_adv: Tensor, y_adv: Tensor
    ) -> None:
        """Write a batch's successes into the running tensors (loading them from disk on resume)."""
        fooled = torch.tensor(record.fooled, dtype=torch.long, device=robust.device)
        if fooled.numel() == 0:
            pass
        elif record.x_adv is not None and record.y_adv is not None:
            x_adv[fooled] = record.x_adv.to(x_adv.device, x_adv.dtype)
            y_adv[fooled] = record.y_adv.to(y_adv.device)
        else:
            saved = torch.load(state.adv_path(key), map_location="cpu", weights_only=True)
            x_adv[fooled] = saved["x_adv"].to(x_adv.device, x_adv.dtype)
            y_adv[fooled] = saved["y_adv"].to(y_adv.device)
        robust[fooled] = False
        if key not in state.batches:
            state.batches[key] = replace(record, x_adv=None, y_adv=None)  # the state keeps no tensors
            state.save()


def _portable(record: BatchRecord) -> BatchRecord:
    """The record with its tensors on the CPU, to travel to the other ranks."""
    if record.x_adv is None or record.y_adv is None:
        return record
    return replace(record, x_adv=record.x_adv.detach().cpu(), y_adv=record.y_adv.detach().cpu())


__all__ = [
    "VERSIONS",
    "AttackSpec",
    "BatchRecord",
    "AutoAttack",
    "AutoAttackConfig",
    "AutoAttackResult",
    "StageResult",
    "version_specs",
]
