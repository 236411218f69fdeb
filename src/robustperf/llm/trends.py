"""Does attack success fall with model size and with adversarial-training rounds? (papers/000 Figs. 1-2)

The answer is read from a study's per-run rounds (`robustperf.llm.study.round_rows`) against the seed
spread, the way papers/000 reads its min/median/max bands: a change counts only when it is larger than
the spread between seeds. For each (task, training attack, evaluation attack):

- **rounds**, per model size: the median ASR over seeds at round 0 and at the last round, the change, the
  seed spread (largest max - min of the two rounds), each seed's least-squares slope of ASR per round, and
  a verdict: ``falls`` / ``rises`` when the median change exceeds the spread, else ``within seed spread``.
- **size**, per round (0 and the last): the median ASR of the smallest and the largest model, the slope of
  ASR per decade of parameters over every seed's point, and a verdict: ``falls`` / ``rises`` when the two
  sizes' min-max bands do not overlap, else ``within seed spread``.

Every point also carries the smallest ASR denominator it rests on (``n_attacked``) and the lowest clean
accuracy of its seeds, so a reader sees when a trend stands on few prompts or on a model that never
learned its task.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

FALLS, RISES, FLAT = "falls", "rises", "within seed spread"


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 2 or len(set(xs)) < 2:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def _band(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n_seeds": len(values)}


def _verdict_change(change: float, spread: float) -> str:
    if abs(change) <= spread:
        return FLAT
    return FALLS if change < 0 else RISES


def _group_key(r: dict[str, Any]) -> tuple[str, str, str]:
    return (str(r["task"]), str(r["attack"]), str(r["eval_attack"]))


def asr_trends(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (task, attack, eval_attack) with the round and size trends (see the module doc).

    Args:
        rows: per-run rounds rows with ``model, n_params, task, attack, eval_attack, seed, round, asr``
            and optionally ``n_attacked`` and ``clean_acc``.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("asr") is not None and not (isinstance(r["asr"], float) and math.isnan(r["asr"])):
            groups[_group_key(r)].append(r)
    return [_one_group(key, group) for key, group in sorted(groups.items())]


def _one_group(key: tuple[str, str, str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_model[str(r["model"])].append(r)
    models = sorted(by_model, key=lambda m: float(by_model[m][0].get("n_params") or 0))
    rounds_out = []
    for model in models:
        rs = by_model[model]
        last = max(int(r["round"]) for r in rs)
        at = {k: [float(r["asr"]) for r in rs if int(r["round"]) == k] for k in (0, last)}
        seeds = sorted({r["seed"] for r in rs})
        slopes = [_slope([float(r["round"]) for r in rs if r["seed"] == s], [float(r["asr"]) for r in rs if r["seed"] == s])
                  for s in seeds]
        entry: dict[str, Any] = {"model": model, "n_params": rs[0].get("n_params"), "last_round": last,
                                 "round0": _band(at[0]) if at[0] else None,
                                 "last": _band(at[last]) if at[last] else None,
                                 "seed_slopes_per_round": slopes, **_support(rs)}
        if at[0] and at[last] and last > 0:
            change = statistics.median(at[last]) - statistics.median(at[0])
            spread = max(max(at[0]) - min(at[0]), max(at[last]) - min(at[last]))
            entry.update(change=change, seed_spread=spread, verdict=_verdict_change(change, spread))
        else:
            entry.update(change=None, seed_spread=None, verdict="needs rounds > 0")
        rounds_out.append(entry)
    size_out = []
    if len(models) >= 2:
        common_last = min(max(int(r["round"]) for r in by_model[m]) for m in models)
        for rnd in sorted({0, common_last}):
            pts = [r for r in rows if int(r["round"]) == rnd and r.get("n_params")]
            small = [float(r["asr"]) for r in by_model[models[0]] if int(r["round"]) == rnd]
            large = [float(r["asr"]) for r in by_model[models[-1]] if int(r["round"]) == rnd]
            if not small or not large:
                continue
            slope = _slope([math.log10(float(r["n_params"])) for r in pts], [float(r["asr"]) for r in pts])
            if max(large) < min(small):
                verdict = FALLS
            elif min(large) > max(small):
                verdict = RISES
            else:
                verdict = FLAT
            size_out.append({"round": rnd, "smallest": models[0], "largest": models[-1],
                             "asr_smallest": _band(small), "asr_largest": _band(large),
                             "slope_per_decade_params": slope, "verdict": verdict,
                             "medians": {m: statistics.median([float(r["asr"]) for r in by_model[m]
                                                               if int(r["round"]) == rnd] or [math.nan])
                                         for m in models}})
    return {"task": key[0], "attack": key[1], "eval_attack": key[2], "rounds": rounds_out, "size": size_out}


def _support(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    attacked = [int(r["n_attacked"]) for r in rows if r.get("n_attacked") is not None]
    acc = [float(r["clean_acc"]) for r in rows if r.get("clean_acc") is not None and int(r["round"]) == 0]
    return {"min_n_attacked": min(attacked) if attacked else None, "min_clean_acc_round0": min(acc) if acc else None}


def trends_markdown(trends: Sequence[dict[str, Any]], *, machine: str = "") -> str:
    """The trends as a Markdown report (one section per task and attack pair)."""
    lines = ["# Attack success rate: trends with rounds and with model size", ""]
    if machine:
        lines += [f"Written on: {machine} (each run's record names the machine it ran on)", ""]
    lines += ["A change counts only when it exceeds the spread between seeds (papers/000 reads its min-max bands "
              "the same way).", ""]
    for t in trends:
        lines += [f"## {t['task']}: trained against {t['attack']}, evaluated with {t['eval_attack']}", "",
                  "| model | params | ASR round 0 (min/med/max) | ASR last round | change | seed spread | verdict "
                  "| min attacked | min clean acc |", "|---|---|---|---|---|---|---|---|---|"]
        for e in t["rounds"]:
            lines.append(f"| {e['model']} | {_num(e['n_params'])} | {_bandtxt(e['round0'])} | "
                         f"{_bandtxt(e['last'])} (round {e['last_round']}) | {_f(e['change'])} | "
                         f"{_f(e['seed_spread'])} | {e['verdict']} | {e['min_n_attacked']} | "
                         f"{_f(e['min_clean_acc_round0'])} |")
        lines.append("")
        for s in t["size"]:
            lines.append(f"- Size, round {s['round']}: {s['smallest']} {_bandtxt(s['asr_smallest'])} vs "
                         f"{s['largest']} {_bandtxt(s['asr_largest'])}; slope {_f(s['slope_per_decade_params'])} "
                         f"ASR per decade of parameters; **{s['verdict']}**.")
        if not t["size"]:
            lines.append("- Size: one model size only; no size trend.")
        lines.append("")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:+.3f}" if abs(x) < 10 else f"{x:.3g}"


def _num(x: Any) -> str:
    return "-" if x is None else f"{float(x):.3g}"


def _bandtxt(b: dict[str, float] | None) -> str:
    return "-" if b is None else f"{b['min']:.2f}/{b['median']:.2f}/{b['max']:.2f}"
