"""Typed blocks of a run record: the ``final``/``best`` metrics and the ``cost`` record.

Each block is a frozen dataclass with the fields every run kind writes, plus ``extra`` for the keys only
some kinds write (an LLM run's ``asr_by_round``, a plan's ``gpu``). A block reads like the dict it
replaces (``record.cost["energy_kwh"]``, ``record.final.get("clean_acc")``, ``dict(record.best)``), so
readers of `result.json` did not change, and `to_dict` writes exactly the keys that were given: the JSON
on disk keeps its shape (a key that was absent stays absent, one that was null stays null).

Each known field declares its unit and meaning (`value`): these are the metric keys of the schema
(`robustperf.store.schema`), which names the index columns ``final.<field>``, ``best.<field>`` and
``cost.<field>`` after them. A block is immutable, so the dict it reads like is built once, on first use.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

B = TypeVar("B", bound="RecordBlock")


def value(unit: str, description: str, *, short: str | None = None) -> Any:
    """A known field of a block (default None) with its unit and meaning, read by the schema.

    Args:
        unit: what the number counts ("fraction", "FLOPs", "kWh"; "" for text and counts of things).
        description: one line a table or an export can show.
        short: the column's name in frames and tables when it is not the field's own (``train_flops``:
            ``flops``).
    """
    return field(default=None, metadata={"unit": unit, "description": description, "short": short})


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
        """The JSON object: the given known fields in declaration order, then ``extra`` (a new dict each call)."""
        return dict(self._view)

    @functools.cached_property
    def _view(self) -> Mapping[str, Any]:
        """The JSON object, built once: a block never changes, so lookups need not rebuild it."""
        out = {}
        for name in self.known():
            given = getattr(self, name)
            if (name in self.given) if self.given is not None else given is not None:
                out[name] = given
        out.update(self.extra)
        return MappingProxyType(out)

    def merged(self: B, changes: Mapping[str, Any]) -> B:
        """A new block with ``changes`` laid over this one (what `RunDir.update_record` does per key)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    # Mapping: readers index a block like the dict result.json holds
    def __getitem__(self, key: str) -> Any:
        return self._view[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view)

    def __len__(self) -> int:
        return len(self._view)

    def __contains__(self, key: object) -> bool:
        return key in self._view

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._view) == dict(other)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking like a dict: not hashable


@dataclass(frozen=True, eq=False)
class Metrics(RecordBlock):
    """The ``final`` or ``best`` block: an evaluation's headline numbers (each field says its unit).

    The fields after ``n_params`` are written by the training loop's evaluations only (``adv_ce`` since
    after the legacy fixture, ``fgsm_acc`` and the overfitting flag with ``eval.fgsm``); they come last so a
    record lists its keys in the order it always did.
    """

    epoch: int | None = value("", "epoch evaluated (0-based)")
    step: int | None = value("steps", "optimiser steps done at the evaluation")
    samples_seen: int | None = value("samples", "training samples seen (all ranks)")
    clean_acc: float | None = value("fraction", "accuracy on clean held-out inputs")
    robust_acc: float | None = value("fraction", "accuracy under the training engine's evaluation attack")
    adv_loss: float | None = value("nats", "the adversarial loss the scaling laws are fitted on (CE + 5 KL)")
    clean_loss: float | None = value("nats", "cross entropy on clean held-out inputs")
    train_loss: float | None = value("nats", "mean training loss of the epoch")
    n_params: int | None = value("parameters", "parameters of the model")
    adv_ce: float | None = value("nats", "cross entropy on the adversarial inputs")
    fgsm_acc: float | None = value("fraction", "accuracy under single-step FGSM (eval.fgsm)")
    catastrophic_overfitting: bool | None = value("", "PGD accuracy collapsed while FGSM accuracy rose")
    co_epoch: int | None = value("", "epoch catastrophic overfitting was first seen")


@dataclass(frozen=True, eq=False)
class CostRecord(RecordBlock):
    """The ``cost`` block, frozen when a run ends: raw measurements beside every derived figure."""

    train_flops: float | None = value("FLOPs", "counted training FLOPs (None: not counted)", short="flops")
    flops_per_sample: float | None = value("FLOPs", "training FLOPs per sample seen")
    samples_seen: float | None = value("samples", "training samples processed (all ranks)")
    eval_flops: float | None = value("FLOPs", "FLOPs spent on evaluation (beside, not inside, train_flops)")
    total_flops: float | None = value("FLOPs", "train_flops + eval_flops")
    seconds: float | None = value("s", "wall-clock seconds")
    n_gpus: int | None = value("devices", "devices used")
    gpu_hours: float | None = value("GPU-h", "seconds x n_gpus / 3600")
    energy_joules: float | None = value("J", "measured device energy (None: time-only meter)")
    energy_kwh: float | None = value("kWh", "energy with PUE")
    co2_kg: float | None = value("kg CO2", "from the grid intensity used")
    usd: float | None = value("USD", "electricity cost, else cloud GPU-hours")
    usd_electricity: float | None = value("USD", "energy_kwh x price")
    usd_gpu_hours: float | None = value("USD", "gpu_hours x hourly price, when one was set")
    energy_source: str | None = value("", "which meter measured the energy (or what an estimate assumed)")
    energy_method: str | None = value("", '"metered", "estimated", "fake" or "none"')
    peak_memory_bytes: int | None = value("bytes", "peak accelerator memory, when measured")
    constants: Mapping[str, Any] | None = value("", "the constants used, each with its source")


__all__ = ["CostRecord", "Metrics", "RecordBlock", "value"]
