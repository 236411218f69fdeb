"""Typed blocks of a run record: the ``final``/``best`` metrics and the ``cost`` record.

Each block is a frozen dataclass with the fields every run kind writes, plus ``extra`` for the keys only
some kinds write (an LLM run's ``asr_by_round``, a plan's ``gpu``). A block reads like the dict it
replaces (``record.cost["energy_kwh"]``, ``record.final.get("clean_acc")``, ``dict(record.best)``), so
readers of `result.json` did not change, and `to_dict` writes exactly the keys that were given: the JSON
on disk keeps its shape (a key that was absent stays absent, one that was null stays null).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

B = TypeVar("B", bound="RecordBlock")


@dataclass(frozen=True, eq=False)
class RecordBlock(Mapping[str, Any]):
    """Base of the typed blocks: known fields, ``extra`` keys, and which keys were given.

    Attributes:
        extra: keys this block type does not name, kept as they came.
        given: the known fields that were given (None: every field that is not None).
    """

    extra: Mapping[str, Any] = field(default_factory=dict)
    given: frozenset[str] | None = field(default=None, repr=False)

    @classmethod
    def known(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "given"))

    @classmethod
    def numeric(cls) -> tuple[str, ...]:
        """The known fields that hold numbers (``int | None`` or ``float | None``)."""
        return tuple(f.name for f in dataclasses.fields(cls) if str(f.type) in ("int | None", "float | None"))

    @classmethod
    def from_dict(cls: type[B], data: Mapping[str, Any] | None) -> B:
        """The block of a JSON object (None or {}: an empty block); unknown keys go to ``extra``."""
        if isinstance(data, cls):
            return data
        data = dict(data or {})
        names = set(cls.known())
        values = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**values, extra=extra, given=frozenset(values))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the given known fields in declaration order, then ``extra``."""
        out = {}
        for name in self.known():
            value = getattr(self, name)
            if (name in self.given) if self.given is not None else value is not None:
                out[name] = value
        out.update(self.extra)
        return out

    def merged(self: B, changes: Mapping[str, Any]) -> B:
        """A new block with ``changes`` laid over this one (what `RunDir.update_record` does per key)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    # Mapping: readers index a block like the dict result.json holds
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self.to_dict() == dict(other)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking like a dict: not hashable


@dataclass(frozen=True, eq=False)
class Metrics(RecordBlock):
    """The ``final`` or ``best`` block: an evaluation's headline numbers.

    Attributes:
        epoch: epoch evaluated (0-based).
        step: optimiser steps done at the evaluation.
        samples_seen: training samples seen (all ranks).
        clean_acc: accuracy on clean held-out inputs.
        robust_acc: accuracy under the evaluation attack.
        adv_loss: the adversarial loss the scaling laws are fitted on.
        clean_loss: cross entropy on clean held-out inputs.
        train_loss: mean training loss of the epoch.
        n_params: parameters of the model.
    """

    epoch: int | None = None
    step: int | None = None
    samples_seen: int | None = None
    clean_acc: float | None = None
    robust_acc: float | None = None
    adv_loss: float | None = None
    clean_loss: float | None = None
    train_loss: float | None = None
    n_params: int | None = None


@dataclass(frozen=True, eq=False)
class CostRecord(RecordBlock):
    """The ``cost`` block, frozen when a run ends: raw measurements beside every derived figure.

    Attributes:
        train_flops: counted training FLOPs (None: not counted).
        flops_per_sample: training FLOPs per sample seen.
        samples_seen: training samples processed (all ranks).
        eval_flops: FLOPs spent on evaluation (beside, not inside, train_flops).
        total_flops: train_flops + eval_flops.
        seconds: wall-clock seconds.
        n_gpus: devices used.
        gpu_hours: seconds x n_gpus / 3600.
        energy_joules: measured device energy (None: time-only meter).
        energy_kwh: with PUE.
        co2_kg: from the grid intensity used.
        usd: electricity cost, else cloud GPU-hours.
        usd_electricity: energy_kwh x price.
        usd_gpu_hours: gpu_hours x hourly price, when one was set.
        energy_source: which meter measured the energy (or what an estimate assumed).
        energy_method: "metered", "estimated", "fake" or "none".
        peak_memory_bytes: peak accelerator memory, when measured.
        constants: the constants used, each with its source.
    """

    train_flops: float | None = None
    flops_per_sample: float | None = None
    samples_seen: float | None = None
    eval_flops: float | None = None
    total_flops: float | None = None
    seconds: float | None = None
    n_gpus: int | None = None
    gpu_hours: float | None = None
    energy_joules: float | None = None
    energy_kwh: float | None = None
    co2_kg: float | None = None
    usd: float | None = None
    usd_electricity: float | None = None
    usd_gpu_hours: float | None = None
    energy_source: str | None = None
    energy_method: str | None = None
    peak_memory_bytes: int | None = None
    constants: Mapping[str, Any] | None = None


__all__ = ["CostRecord", "Metrics", "RecordBlock"]
