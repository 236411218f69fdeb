"""One robust accuracy per run, the same everywhere it is shown (issue 27).

`runs list` and `report runs` used to show the training engine's last-epoch PGD-40-CW accuracy (at the
evaluation eps of the training config, 8/255), the study report the APGD-CE accuracy of the best
checkpoint at the training eps (0.1): two numbers, two fitted laws. Here a run's robust accuracy is its
post-training evaluation: the per-example worst case over every attack of the evaluation's cascade
(`robustperf.evaluation.evaluate`), on one named checkpoint, at the eps actually used. When a run holds
several such evaluations, the one with the most attacks (then the most test points) wins, and a stage of
the cascade that a later, stronger stage beat is flagged: that attack alone overstated the robustness.

Rows are flattened index rows (`robustperf.store.load_index`, whose `robust.acc` column is this number). Without any post-training evaluation the
training engine's last-epoch evaluation is used, and the label says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from robustperf import threat
from robustperf.store.schema import (
    CONFIG_ATTACK_EPS,
    CONFIG_ATTACK_NORM,
    CONFIG_EVAL_EPS,
    CONFIG_EVAL_LOSS,
    CONFIG_EVAL_N_EXAMPLES,
    CONFIG_EVAL_STEPS,
    FINAL,
    ROBUST_ACC,
    ROBUST_CLEAN_ACC,
    ROBUST_FROM,
    evaluation_column,
    split_evaluation_column,
)

BEATEN_POINTS = 0.005  # a stage is "beaten" when a later stage fooled at least half a point more


@dataclass(frozen=True)
class RobustAccuracy:
    """A run's robust accuracy and where it comes from.

    Attributes:
        value: robust accuracy (fraction), None when the run has none.
        clean: clean accuracy of the same checkpoint and test points.
        attacks: the attack set ("apgd-ce + apgd-t"), or the training evaluation's attack.
        checkpoint: "best", "final" or "last epoch".
        eps, norm: the threat model actually used.
        n_examples: test points.
        column: the index column it came from.
        beaten: one line per cascade stage a later stage beat (the weaker attack overstated robustness).
    """

    value: float | None
    clean: float | None
    attacks: str
    checkpoint: str
    eps: float | None
    norm: str
    n_examples: int | None
    column: str
    beaten: list[str] = field(default_factory=list)

    def short(self) -> str:
        """'apgd-ce+apgd-t @best eps 0.1' for a table column."""
        eps = "" if self.eps is None else f" eps {self.eps:.3g}"
        return f"{self.attacks.replace(' + ', '+')} @{self.checkpoint.replace(' ', '-')}{eps}"

    def label(self) -> str:
        """'apgd-ce + apgd-t, best checkpoint, linf eps 0.1, 359 points'."""
        eps = "" if self.eps is None else f", {self.norm} eps {self.eps:.4g}"
        n = "" if self.n_examples is None else f", {self.n_examples} points"
        return f"{self.attacks}, {self.checkpoint} checkpoint{eps}{n}"


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _attacks(row: Mapping[str, Any], key: str) -> list[str]:
    raw = row.get(evaluation_column(key, "attacks"))
    if isinstance(raw, str) and raw.startswith("["):
        raw = json.loads(raw)
    if isinstance(raw, (list, tuple)) and raw:
        return [str(a) for a in raw]
    attack = row.get(evaluation_column(key, "attack"))
    return str(attack).split("+") if attack else [key]


def evaluation_keys(row: Mapping[str, Any]) -> list[str]:
    """Keys of the run's post-training evaluations that have a robust accuracy, strongest first."""
    keys = []
    for column, value in row.items():
        split = split_evaluation_column(column)
        if split is not None and split[1] == "robust_acc" and _num(value) is not None:
            keys.append(split[0])

    def strength(key: str) -> tuple[int, int]:
        return len(_attacks(row, key)), int(_num(row.get(evaluation_column(key, "n_examples"))) or 0)

    return sorted(keys, key=strength, reverse=True)


def beaten_stages(row: Mapping[str, Any], key: str) -> list[str]:
    """Cascade stages whose own accuracy a later stage lowered by at least `BEATEN_POINTS`."""
    stages = _attacks(row, key)
    accs = [_num(row.get(evaluation_column(key, f"per_attack.{s}.robust_acc"))) for s in stages]
    out = []
    final = _num(row.get(evaluation_column(key, "robust_acc")))
    for stage, acc in zip(stages[:-1], accs[:-1], strict=True):
        if acc is not None and final is not None and acc - final >= BEATEN_POINTS:
            out.append(f"{stage} alone overstated robust accuracy by {100 * (acc - final):.1f} points "
                       f"(beaten by {' + '.join(stages[stages.index(stage) + 1:])})")
    return out


def robust_accuracy(row: Mapping[str, Any], key: str | None = None) -> RobustAccuracy:
    """The run's one robust accuracy (``key``: a specific evaluation; default the strongest)."""
    keys = [key] if key else evaluation_keys(row)
    if keys and _num(row.get(evaluation_column(keys[0], "robust_acc"))) is not None:
        k = keys[0]
        get = lambda name: row.get(evaluation_column(k, name))  # noqa: E731
        n = _num(get("n_examples"))
        return RobustAccuracy(_num(get("robust_acc")), _num(get("clean_acc")), " + ".join(_attacks(row, k)),
                              str(get("checkpoint") or "best"), _num(get("eps")), str(get("norm") or ""),
                              None if n is None else int(n), evaluation_column(k, "robust_acc"), beaten_stages(row, k))
    steps = row.get(CONFIG_EVAL_STEPS)
    loss = row.get(CONFIG_EVAL_LOSS)
    attack = f"PGD-{int(steps)}-{str(loss).upper()} (training evaluation)" if steps else "training evaluation"
    n = _num(row.get(CONFIG_EVAL_N_EXAMPLES))
    return RobustAccuracy(_num(row.get(FINAL.robust_acc)), _num(row.get(FINAL.clean_acc)), attack, "last epoch",
                          _training_evaluation_eps(row), str(row.get(CONFIG_ATTACK_NORM) or ""),
                          None if n is None else int(n), FINAL.robust_acc)


def _training_evaluation_eps(row: Mapping[str, Any]) -> float | None:
    """The radius of the run's per-epoch evaluation (`RunConfig.eval_threat`), by the one eps rule: the
    training eps unless ``eval.attack.eps`` asked another (its old default 8/255 did not)."""
    training = _num(row.get(CONFIG_ATTACK_EPS))
    if training is None:
        return None
    return threat.evaluation_eps(training, threat.asked_eval_eps(_num(row.get(CONFIG_EVAL_EPS))))


def robust_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """The index columns naming a run's one robust accuracy: ``robust.acc``, ``robust.clean_acc``, ``robust.from``."""
    r = robust_accuracy(row)
    return {ROBUST_ACC: r.value, ROBUST_CLEAN_ACC: r.clean, ROBUST_FROM: r.label()}
