"""Rows of ``metrics.jsonl``, typed: what the training loop logs every few steps and after each evaluation.

The loop builds a `TrainRow` or an `EvalRow` and writes its `to_dict`; readers (the tracking export, the
training curves of `robustperf.scaling.load_curves`) read rows back through `parse_row`. The JSON on disk is
what the loop always wrote, key for key and in the same order:

    {"loss": .., <method metrics>.., "kind": "train", "step": .., "epoch": .., "samples_seen": .., "lr": .., "seconds": ..}
    {"kind": "eval", "clean_acc": .., "robust_acc": .., "clean_loss": .., "adv_loss": .., "adv_ce": .., "n_eval": ..,
     ["fgsm_acc": ..,] "epoch": .., "step": .., "samples_seen": .., "train_loss": .., "eval_seconds": .., "n_params": ..,
     ["catastrophic_overfitting": .., ["co_epoch": ..]]}

A field that is None is not written (older runs lack ``adv_ce``; ``fgsm_acc`` comes with ``eval.fgsm``),
except ``co_epoch``, written whenever ``catastrophic_overfitting`` is true. Other rows of the file (events
such as ``{"kind": "event", "event": "interrupted"}``, an LLM run's rounds) are not metrics rows:
`parse_row` returns None for them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

log = logging.getLogger(__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(row: Any, ints: tuple[str, ...], numbers: tuple[str, ...]) -> None:
    """ValueError naming every field of `row` whose value has the wrong type (None: absent, allowed)."""
    bad = [f"{name} = {getattr(row, name)!r} is not an integer" for name in ints
           if getattr(row, name) is not None and not _is_int(getattr(row, name))]
    bad += [f"{name} = {getattr(row, name)!r} is not a number" for name in numbers
            if getattr(row, name) is not None and not _is_number(getattr(row, name))]
    if bad:
        raise ValueError(f"{type(row).__name__}: " + "; ".join(bad))


@dataclass(frozen=True, kw_only=True)
class TrainRow:
    """The training row: means over the steps since the previous row, logged every ``log_every_n_steps``.

    Attributes:
        values: ``loss`` and the method's own metrics (``adv_acc``...), means over the steps logged (None: a
            non-finite mean, stored as null).
        step: optimiser steps done (None only in rows written by other tools).
        epoch: current epoch (0-based).
        samples_seen: training samples seen (all ranks; an integer from the loop, any number from other tools).
        lr: learning rate of the first parameter group.
        seconds: wall-clock seconds of the run so far (all attempts).
    """

    KIND: ClassVar[str] = "train"
    FIXED: ClassVar[tuple[str, ...]] = ("kind", "step", "epoch", "samples_seen", "lr", "seconds")

    values: Mapping[str, float | None] = field(default_factory=dict)
    step: int | None = None
    epoch: int | None = None
    samples_seen: float | None = None
    lr: float | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        _check(self, ("step", "epoch"), ("samples_seen", "lr", "seconds"))
        clash = sorted(set(self.values) & set(self.FIXED))
        if clash:
            raise ValueError(f"TrainRow: metric names {', '.join(clash)} are taken by the row's own fields")
        wrong = [k for k, v in self.values.items() if v is not None and not _is_number(v)]
        if wrong:
            raise ValueError(f"TrainRow: metrics {', '.join(wrong)} are not numbers")

    @property
    def loss(self) -> float | None:
        """Mean training loss over the steps logged."""
        return self.values.get("loss")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of metrics.jsonl (the metrics first, then the row's own fields)."""
        out: dict[str, Any] = {**self.values, "kind": self.KIND}
        for name in self.FIXED[1:]:
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> TrainRow:
        """The row of a JSON object (ValueError: a field of the wrong type, or a metric that is not a number)."""
        fixed = {k: row[k] for k in cls.FIXED[1:] if k in row}
        values = {k: v for k, v in row.items() if k not in cls.FIXED}
        return cls(values=values, **fixed)


@dataclass(frozen=True, kw_only=True)
class EvalRow:
    """The evaluation row: the training engine's held-out evaluation at an epoch's end (fields in file order).

    Attributes:
        clean_acc, robust_acc: accuracy on clean and on attacked held-out inputs (fractions).
        clean_loss, adv_loss, adv_ce: clean cross entropy, the adversarial loss the laws are fitted on
            (CE + 5 KL), cross entropy on the attacked inputs.
        n_eval: held-out examples.
        fgsm_acc: accuracy under single-step FGSM (with ``eval.fgsm``).
        epoch, step, samples_seen: where training stood (samples_seen: an integer from the loop, any number
            from other tools; step None only in rows written by other tools).
        train_loss: mean training loss of the epoch.
        eval_seconds: seconds the evaluation took.
        n_params: parameters of the model (a number, as samples_seen).
        catastrophic_overfitting, co_epoch: the overfitting flag (with ``eval.fgsm``) and the epoch it was
            first seen.
        extra: keys this row type does not name, kept as they came.
    """

    KIND: ClassVar[str] = "eval"

    clean_acc: float | None = None
    robust_acc: float | None = None
    clean_loss: float | None = None
    adv_loss: float | None = None
    adv_ce: float | None = None
    n_eval: int | None = None
    fgsm_acc: float | None = None
    epoch: int | None = None
    step: int | None = None
    samples_seen: float | None = None
    train_loss: float | None = None
    eval_seconds: float | None = None
    n_params: float | None = None
    catastrophic_overfitting: bool | None = None
    co_epoch: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self, ("step", "epoch", "n_eval", "co_epoch"),
               ("clean_acc", "robust_acc", "clean_loss", "adv_loss", "adv_ce", "fgsm_acc", "samples_seen",
                "train_loss", "eval_seconds", "n_params"))
        if self.catastrophic_overfitting is not None and not isinstance(self.catastrophic_overfitting, bool):
            raise ValueError(f"EvalRow: catastrophic_overfitting = {self.catastrophic_overfitting!r} is not a boolean")

    @classmethod
    def known(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    def metrics(self) -> dict[str, Any]:
        """The row without its ``kind``: the evaluation's numbers, as the loop keeps them (``last_eval``, ``best``)."""
        out: dict[str, Any] = {}
        for name in self.known():
            value = getattr(self, name)
            if value is not None or (name == "co_epoch" and self.catastrophic_overfitting):
                out[name] = value
        out.update(self.extra)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of metrics.jsonl."""
        return {"kind": self.KIND, **self.metrics()}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> EvalRow:
        """The row of a JSON object or of an evaluation's numbers (``kind`` is dropped; unknown keys go to
        ``extra``). ValueError: a field of the wrong type."""
        names = set(cls.known())
        known = {k: v for k, v in row.items() if k in names}
        extra = {k: v for k, v in row.items() if k not in names and k != "kind"}
        return cls(**known, extra=extra)


MetricsRow = TrainRow | EvalRow
_TYPES: dict[str, type[TrainRow] | type[EvalRow]] = {TrainRow.KIND: TrainRow, EvalRow.KIND: EvalRow}


def parse_row(row: Mapping[str, Any]) -> MetricsRow | None:
    """The typed row of one metrics.jsonl object; None for rows of other kinds (events, LLM rounds).

    Raises:
        ValueError: a train or eval row whose fields have the wrong types.
    """
    kind = _TYPES.get(row.get("kind"))  # type: ignore[arg-type]
    return None if kind is None else kind.from_dict(row)


def parse_rows(rows: Iterable[Mapping[str, Any]], source: str = "metrics.jsonl") -> list[MetricsRow]:
    """The train and eval rows of `rows`, typed; a row of the wrong shape is left out with a warning."""
    out = []
    for number, row in enumerate(rows, start=1):
        try:
            typed = parse_row(row)
        except (TypeError, ValueError) as exc:
            log.warning("%s: metrics row %d left out: %s", source, number, exc)
            continue
        if typed is not None:
            out.append(typed)
    return out


__all__ = ["EvalRow", "MetricsRow", "TrainRow", "parse_row", "parse_rows"]
