"""The run index's columns, declared once: name, type, source, unit and meaning.

Every table, figure and export that reads the index (`robustperf.store.load_index`) names its columns
through this module instead of spelling ``"final.robust_acc"``: the report's frame
(`robustperf.report.analysis.COLUMNS`), the fitting defaults (`robustperf.scaling.STORE_COLUMNS`),
`robustperf runs list`, the tracking export, the one robust accuracy (`robustperf.store.robust`).

Where the columns come from:

- the record itself: `RUN_ID`, `STATUS`, `KIND`, ... (one column per `RunRecord` field that is not a block);
- the typed blocks of result.json: ``final.<field>`` and ``best.<field>`` for every field of `Metrics`,
  ``cost.<field>`` for every field of `CostRecord` (`FINAL.robust_acc`, `COST.train_flops`): a metric key
  is declared once, as a field of its block, with its unit;
- the resolved config: the ``config.<section>.<key>`` columns readers use, declared below (the index
  holds every config key; these are the ones with a meaning outside the config);
- the run's one robust accuracy (`robustperf.store.robust`): `ROBUST_ACC`, `ROBUST_CLEAN_ACC`, `ROBUST_FROM`;
- a post-training evaluation ``evaluations.<name>.<field>`` (`evaluation_column`).

A name that is not declared is an error naming the close matches (`column`, ``FINAL.robust_acs``), so a
typo fails where it is written instead of showing an empty column.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from robustperf.store.blocks import CostRecord, Metrics, RecordBlock

SECTIONS: tuple[str, ...] = ("final", "best", "cost", "evaluations")  # result.json objects flattened into the index
CONFIG_PREFIX = "config."  # every key of the resolved config is a column under this prefix


@dataclass(frozen=True)
class Column:
    """One column of the run index.

    Attributes:
        key: the column's name in the index (``"final.robust_acc"``).
        type: the Python type of its values (None: absent).
        source: "record", "config", "final", "best", "cost", "robust" or "evaluations".
        unit: what a number counts ("fraction", "FLOPs", "kWh"); "" for text and plain counts.
        description: one line a table or an export can show.
        short: its name in frames and tables (the report's frame: ``flops`` for ``cost.train_flops``).
    """

    key: str
    type: type
    source: str
    unit: str
    description: str
    short: str


_DECLARED: dict[str, Column] = {}


def _declare(key: str, type_: type, source: str, unit: str, description: str, short: str | None = None) -> str:
    if key in _DECLARED:
        raise ValueError(f"index column {key!r} is declared twice")
    _DECLARED[key] = Column(key, type_, source, unit, description, short or key.rsplit(".", 1)[-1])
    return key


# --------------------------------------------------------------------------------- the record itself
RUN_ID = _declare("run_id", str, "record", "", "the run's id: a hash of its resolved config")
PATH = _declare("path", str, "record", "", "the run directory")
STATUS = _declare("status", str, "record", "", "pending, running, finished, failed, interrupted or corrupt")
KIND = _declare("kind", str, "record", "", '"train" or "llm"')
FAILURE_REASON = _declare("failure_reason", str, "record", "", "why a run failed, was interrupted or is corrupt")
STARTED_AT = _declare("started_at", str, "record", "", "UTC time the first attempt started (ISO 8601)")
ENDED_AT = _declare("ended_at", str, "record", "", "UTC time the run ended (ISO 8601)")


# ------------------------------------------------------------------------------ the typed blocks
class Section:
    """The columns of one typed block: ``FINAL.robust_acc == "final.robust_acc"``; an unknown field raises."""

    def __init__(self, name: str, block: type[RecordBlock], short: str = "{}") -> None:
        self.name, self.block = name, block
        for f in dataclasses.fields(block):
            if f.name in ("extra", "given"):
                continue
            meta = f.metadata
            _declare(f"{name}.{f.name}", _type_of(f.type), name, meta.get("unit", ""), meta.get("description", ""),
                     short.format(meta.get("short") or f.name))

    def __getattr__(self, field: str) -> str:
        if field.startswith("_") or field not in self.block.known():
            close = difflib.get_close_matches(field, self.block.known(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(self.block.known())}"
            raise AttributeError(f"{self.name} has no field {field!r}{hint}")
        return f"{self.name}.{field}"

    def __repr__(self) -> str:
        return f"Section({self.name!r}, {self.block.__name__})"


def _type_of(annotation: Any) -> type:
    text = str(annotation)
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if text.startswith(name):
            return kind
    return dict


FINAL = Section("final", Metrics)  # the last evaluation
BEST = Section("best", Metrics, short="best_{}")  # the best evaluation (eval.select_best_on)
COST = Section("cost", CostRecord)  # the run's cost, frozen when it ended

# ------------------------------------------------------------------------------- the resolved config
CONFIG_MODEL = _declare("config.model.name", str, "config", "", "model architecture", "model")
CONFIG_METHOD = _declare("config.method.name", str, "config", "", "training method", "method")
CONFIG_DATASET = _declare("config.data.dataset", str, "config", "", "data set", "dataset")
CONFIG_N_TRAIN = _declare("config.data.n_train", int, "config", "examples", "training examples (None: all)")
CONFIG_SYNTHETIC_PATH = _declare("config.data.synthetic_path", str, "config", "", "synthetic images mixed in")
CONFIG_SYNTHETIC_FID = _declare("config.data.synthetic_fid", float, "config", "FID", "FID of the synthetic images",
                                "fid")
CONFIG_SYNTHETIC_FRACTION = _declare("config.data.synthetic_fraction", float, "config", "fraction",
                                     "share of synthetic images in a batch")
CONFIG_ATTACK_STEPS = _declare("config.method.attack.n_steps", int, "config", "steps", "training attack's steps",
                               "attack_steps")
CONFIG_ATTACK_EPS = _declare("config.method.attack.eps", float, "config", "pixels in [0, 1]",
                             "training threat model's eps", "eps")
CONFIG_ATTACK_NORM = _declare("config.method.attack.norm", str, "config", "", "training threat model's norm",
                              "norm")
CONFIG_BETA = _declare("config.method.beta", float, "config", "", "TRADES/MART weight of the robust term")
CONFIG_SEED = _declare("config.runtime.seed", int, "config", "", "random seed")
CONFIG_EVAL_STEPS = _declare("config.eval.attack.n_steps", int, "config", "steps",
                             "training evaluation attack's steps", "eval_steps")
CONFIG_EVAL_EPS = _declare("config.eval.attack.eps", float, "config", "pixels in [0, 1]",
                           "training evaluation's eps as written (its old default 8/255: the training eps)",
                           "eval_eps")
CONFIG_EVAL_LOSS = _declare("config.eval.attack.loss", str, "config", "", "training evaluation attack's loss",
                            "eval_loss")
CONFIG_EVAL_N_EXAMPLES = _declare("config.eval.n_examples", int, "config", "examples",
                                  "held-out examples of the training evaluation", "eval_n_examples")

# --------------------------------------------------------------------- the one robust accuracy (issue 27)
ROBUST_ACC = _declare("robust.acc", float, "robust", "fraction",
                      "the run's one robust accuracy (strongest post-training evaluation, else the training one)",
                      "robust_acc")
ROBUST_CLEAN_ACC = _declare("robust.clean_acc", float, "robust", "fraction",
                            "clean accuracy of the same checkpoint and test points", "clean_acc")
ROBUST_FROM = _declare("robust.from", str, "robust", "", "where robust.acc comes from (attacks, checkpoint, eps)",
                       "robust_from")

# ---------------------------------------------------------------- post-training evaluations (per name)
EVALUATION_FIELDS: tuple[str, ...] = ("clean_acc", "robust_acc", "n_examples", "seconds")  # what trackers export


def evaluation_column(name: str, field: str) -> str:
    """``evaluations.<name>.<field>``: a field of the post-training evaluation stored as `name`."""
    return f"evaluations.{name}.{field}"


def split_evaluation_column(key: str) -> tuple[str, str] | None:
    """(name, field) of an ``evaluations.<name>.<field>`` column (names hold no dot), else None."""
    section, _, rest = key.partition(".")
    name, _, field = rest.partition(".")
    return (name, field) if section == "evaluations" and name and field else None


COLUMNS: Mapping[str, Column] = _DECLARED  # every declared column, in declaration order


def column(key: str) -> Column:
    """The declared column `key`; an undeclared one raises `KeyError` naming the close matches."""
    try:
        return COLUMNS[key]
    except KeyError:
        close = difflib.get_close_matches(key, list(COLUMNS), n=3)
        raise KeyError(f"{key!r} is not a declared index column" + (f"; did you mean {', '.join(close)}?" if close
                                                                    else "")) from None


def columns(*keys: str) -> tuple[Column, ...]:
    """The declared columns `keys`, in that order (each checked by `column`)."""
    return tuple(column(k) for k in keys)


def is_declared(key: str) -> bool:
    """Whether `key` is a declared column, a key inside a declared object column (``cost.constants.pue.value``),
    or a column of a stored evaluation (``evaluations.<name>.<field>``)."""
    if key in COLUMNS or split_evaluation_column(key) is not None:
        return True
    parts = key.split(".")
    return any(COLUMNS.get(".".join(parts[:i])) is not None and COLUMNS[".".join(parts[:i])].type is dict
               for i in range(1, len(parts)))


__all__ = ["BEST", "COLUMNS", "CONFIG_PREFIX", "COST", "Column", "EVALUATION_FIELDS", "FINAL", "SECTIONS",
           "Section", "column", "columns", "evaluation_column", "is_declared", "split_evaluation_column"]
