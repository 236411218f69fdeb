"""Hyperparameter-tuning cost (papers/004): each selected run's cost alone and with its tuning runs added.

A study with ``tuning.grid`` trains every point once per tuning combination (`robustperf.sweep.study`).
Here the runs that differ only in the tuning keys are grouped; the finished run with the best
``tuning.select_on`` metric is the *selected* run and the others are its *tuning runs*. The report
shows, per group, the selected run's FLOPs, time, kWh, CO2 and USD, the same with the tuning runs'
cost added, and the ratio - what a method's headline number cost once the search for its
hyperparameters is paid for.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from robustperf.store.schema import COST

COST_KEYS = ((COST.train_flops, "FLOPs"), (COST.seconds, "time (s)"), (COST.energy_kwh, "kWh"), (COST.co2_kg, "CO2 kg"),
             (COST.usd, "USD"))


@dataclass(frozen=True)
class TuningGroup:
    """One study point's tuning runs.

    Attributes:
        selected: run id of the selected run (None if no run of the group finished).
        chosen: the tuning keys' values of the selected run.
        run_ids: every run of the group (selected first).
        selected_cost / total_cost: cost key -> the selected run's value / the sum over the group
            (None where a run lacks the figure).
        metric: the selection metric's value of the selected run.
    """

    selected: str | None
    chosen: dict[str, Any]
    run_ids: tuple[str, ...]
    selected_cost: dict[str, float | None]
    total_cost: dict[str, float | None]
    metric: float | None = None
    failed: tuple[str, ...] = field(default_factory=tuple)

    @property
    def tuning_ids(self) -> tuple[str, ...]:
        return tuple(r for r in self.run_ids if r != self.selected)


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def tuning_groups(rows: list[dict[str, Any]], tuning_keys: list[str], select_on: str) -> list[TuningGroup]:
    """Group index rows (`robustperf.store.load_index`) by everything in their config but the tuning keys.

    Args:
        rows: one dict per run with flattened ``config.*``, ``final.*``, ``cost.*`` and ``status``.
        tuning_keys: the dotted run-config keys tuned over (``tuning.grid``'s keys).
        select_on: "robust_acc", "clean_acc" (higher wins) or "adv_loss" (lower wins).
    """
    tuned = {f"config.{k}" for k in tuning_keys}
    groups: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
    for row in rows:
        key = tuple(sorted((k, repr(v)) for k, v in row.items() if k.startswith("config.") and k not in tuned))
        groups.setdefault(key, []).append(row)
    sign = -1.0 if select_on == "adv_loss" else 1.0
    out = []
    for members in groups.values():
        finished = [r for r in members if r.get("status") == "finished" and _finite(r.get(f"final.{select_on}"))
                    is not None]
        best = max(finished, key=lambda r: sign * float(r[f"final.{select_on}"]), default=None)
        ordered = ([best] if best else []) + [r for r in members if r is not best]
        selected_cost: dict[str, float | None] = {}
        total_cost: dict[str, float | None] = {}
        for key_, _ in COST_KEYS:
            values = [v for v in (_finite(r.get(key_)) for r in members) if v is not None]
            selected_cost[key_] = None if best is None else _finite(best.get(key_))
            total_cost[key_] = None if selected_cost[key_] is None else sum(values)  # runs without the figure add 0
        out.append(TuningGroup(
            selected=None if best is None else str(best["run_id"]),
            chosen={} if best is None else {k: best.get(f"config.{k}") for k in tuning_keys},
            run_ids=tuple(str(r["run_id"]) for r in ordered),
            selected_cost=selected_cost, total_cost=total_cost,
            metric=None if best is None else float(best[f"final.{select_on}"]),
            failed=tuple(str(r["run_id"]) for r in members if r.get("status") != "finished"),
        ))
    return out


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}"


def tuning_table(groups: list[TuningGroup], select_on: str) -> str:
    """HTML: per tuning group, the selected run's cost alone and with its tuning runs, and the ratio."""
    if not groups:
        return ""
    head = ("<tr><th>selected run</th><th>chosen</th><th>" + html.escape(select_on) + "</th><th>tuning runs</th>"
            + "".join(f"<th>{h}: selected / with tuning</th>" for _, h in COST_KEYS) + "<th>x cost of tuning</th></tr>")
    body = []
    for g in groups:
        chosen = ", ".join(f"{k}={v}" for k, v in g.chosen.items()) or "-"
        cells = [html.escape(g.selected or "(none finished)"), html.escape(chosen), _fmt(g.metric),
                 str(len(g.tuning_ids)) + (f" ({len(g.failed)} failed)" if g.failed else "")]
        for key, _ in COST_KEYS:
            cells.append(f"{_fmt(g.selected_cost[key])} / {_fmt(g.total_cost[key])}")
        sel, tot = g.selected_cost[COST.seconds], g.total_cost[COST.seconds]
        cells.append(_fmt(tot / sel) if sel and tot is not None else "-")
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    note = ("<p class='note'>Runs that differ only in the tuning keys form a group; the finished run with the best "
            f"final {html.escape(select_on)} is selected and the laws above are fitted to selected runs only. "
            "\"with tuning\" adds every run of the group; a failed run adds what it recorded (often nothing).</p>")
    return f"<table class='data'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>{note}"
