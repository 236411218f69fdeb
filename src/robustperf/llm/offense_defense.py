"""Offense vs defence compute (papers/000 Sec. 6 and App. E.4): what an attacker must spend to reach a
given attack success rate, as a function of what the defender spent on adversarial training and of
model size.

Every adversarial-training round records, for each attacked validation prompt, the attack step at which
it first succeeded (`success_steps`: GCG iteration or RandomToken query; None if never) and the
measured attack FLOPs per step. From these:

- `asr_curve`: ASR after k attack steps, k = 0..K (the ASR-vs-iterations curves per size);
- `attack_flops_to_reach`: the attack FLOPs per prompt at which the ASR first reaches a target,
  interpolated linearly in k between measured steps (None if the attack never gets there);
- `fit_offense_defense`: least squares of ``log10 attack = a + b log10 defence + c log10 params``, the
  log-log linear fit the paper draws through its offense-defence points (slope b < 1: the attacker's
  cost grows slower than the defender's).

Defence FLOPs at round r are the clean fine-tune plus, for rounds 1..r, adversarial training and the
attacks on training examples that produced its data (both are the defender's spending).

numpy only, so analysis runs without torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def success_steps_gcg(losses: Sequence[Sequence[float]], success: Sequence[bool], *,
                      n_labels: int = 2) -> list[int | None]:
    """The GCG iteration at which each prompt first flipped (0 = already wrong with the initial block).

    For two classes a flip is a target cross-entropy below ln 2 (target probability above 1/2), which the
    per-iteration best losses show with or without early stopping; with more classes only the final
    outcome is known, so the last iteration run is used for successes.
    """
    out: list[int | None] = []
    for curve, ok in zip(losses, success, strict=True):
        if not ok:
            out.append(None)
        elif n_labels == 2:
            out.append(next((t for t, loss in enumerate(curve) if loss < math.log(2)), len(curve) - 1))
        else:
            out.append(len(curve) - 1)
    return out


def success_steps_random_token(n_queries: Sequence[int], success: Sequence[bool]) -> list[int | None]:
    """The RandomToken query at which each prompt first flipped (None if its budget ran out)."""
    return [q if ok else None for q, ok in zip(n_queries, success, strict=True)]


def step_record(attack_name: str, params: dict[str, Any], *, losses: Sequence[Sequence[float]],
                success: Sequence[bool], n_queries: Sequence[int], flops: float, n_labels: int = 2) -> dict[str, Any]:
    """What a round row keeps of an attack for the offense-defence analysis: per-prompt success steps, the
    step budget, and the measured attack FLOPs per step (total attack FLOPs / steps actually run)."""
    if attack_name == "gcg":
        steps = success_steps_gcg(losses, success, n_labels=n_labels)
        n_steps, steps_run = int(params["n_iterations"]), sum(max(0, len(c) - 1) for c in losses)
    else:
        steps = success_steps_random_token(n_queries, success)
        n_steps, steps_run = int(params["n_queries"]), sum(n_queries)
    return {"val_success_steps": steps, "attack_n_steps": n_steps, "attack_step": attack_name,
            "attack_flops_per_step": flops / steps_run if steps_run else 0.0}


def asr_curve(steps: Sequence[int | None], n_steps: int) -> np.ndarray:
    """ASR after k steps for k = 0..n_steps, over the prompts in ``steps`` (the initially correct ones)."""
    if not steps:
        return np.full(n_steps + 1, np.nan)
    done = np.array([np.inf if s is None else s for s in steps], dtype=float)
    k = np.arange(n_steps + 1)
    return (done[None, :] <= k[:, None]).mean(axis=1)


def attack_flops_to_reach(curve: np.ndarray, flops_per_step: float, target: float) -> float | None:
    """Attack FLOPs per prompt at which ``curve`` (ASR vs step) first reaches ``target`` (None: never)."""
    hits = np.nonzero(curve >= target)[0]
    if hits.size == 0:
        return None
    k = int(hits[0])
    if k == 0:
        return 0.0
    lo, hi = curve[k - 1], curve[k]
    frac = (target - lo) / (hi - lo) if hi > lo else 1.0
    return float((k - 1 + frac) * flops_per_step)


@dataclass(frozen=True)
class OffenseDefensePoint:
    """One (model, round): the defender's cumulative FLOPs and the attack FLOPs per prompt to reach the target."""

    run_id: str
    n_params: int
    round: int
    defense_flops: float
    attack_flops: float | None
    asr_final: float | None
    attack: str = ""


def points_from_rows(run_id: str, rows: Sequence[dict[str, Any]], *, target_asr: float) -> list[OffenseDefensePoint]:
    """Offense-defence points of one advtrain run's metrics rows (those that recorded success steps)."""
    out = []
    defense = 0.0
    for row in sorted(rows, key=lambda r: r["round"]):
        defense += float(row.get("train_flops", 0.0)) + float(row.get("attack_train_flops", 0.0))
        steps = row.get("val_success_steps")
        if steps is None or not row.get("attack_flops_per_step"):
            continue
        curve = asr_curve(steps, int(row["attack_n_steps"]))
        out.append(OffenseDefensePoint(run_id, int(row["n_params"]), int(row["round"]), defense,
                                       attack_flops_to_reach(curve, float(row["attack_flops_per_step"]), target_asr),
                                       None if not steps else float(curve[-1]), str(row.get("attack_step", ""))))
    return out


def collect_points(runs_dir: str | Path, *, target_asr: float) -> list[OffenseDefensePoint]:
    """Offense-defence points of every advtrain run under ``runs_dir`` (metrics.jsonl rows)."""
    from robustperf.store.io import read_jsonl

    out: list[OffenseDefensePoint] = []
    for metrics in sorted(Path(runs_dir).glob("*-advtrain-*/metrics.jsonl")):
        out += points_from_rows(metrics.parent.name, read_jsonl(metrics), target_asr=target_asr)
    return out


def collect_curves(runs_dir: str | Path, *, round_: int = 0) -> dict[tuple[str, int], list[np.ndarray]]:
    """ASR-vs-attack-step curves at round ``round_`` of every advtrain run, grouped by (attack, n_params):
    one curve per run (seed)."""
    from robustperf.store.io import read_jsonl

    out: dict[tuple[str, int], list[np.ndarray]] = {}
    for metrics in sorted(Path(runs_dir).glob("*-advtrain-*/metrics.jsonl")):
        for row in read_jsonl(metrics):
            if row.get("round") == round_ and row.get("val_success_steps") is not None:
                key = (str(row.get("attack_step", "")), int(row["n_params"]))
                out.setdefault(key, []).append(asr_curve(row["val_success_steps"], int(row["attack_n_steps"])))
    return out


@dataclass(frozen=True)
class OffenseDefenseFit:
    """``log10 attack_flops = intercept + defense_slope log10 defense_flops + size_slope log10 n_params``.

    Attributes:
        status: "ok"; "too_few_points" (fewer points than parameters + 1); or "poorly_identified" (a slope's
            95 % bootstrap interval is wider than the slope itself, the rule `robustperf.scaling.identify`
            applies to every fitted law).
        n_points: points used (those where the target ASR was reached).
        r2: coefficient of determination in log space.
        per_size_slopes: n_params -> slope of log attack vs log defence for that size alone (NaN if < 2 points).
        intervals: "defense_slope" / "size_slope" -> 95 % bootstrap interval (resampling the points).
        attack: the attack whose FLOPs were fitted ("" when not recorded).
    """

    status: str
    intercept: float
    defense_slope: float
    size_slope: float
    n_points: int
    r2: float
    per_size_slopes: dict[int, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    attack: str = ""

    def predict(self, defense_flops: float, n_params: int) -> float:
        """Attack FLOPs per prompt predicted by the fit."""
        return float(10 ** (self.intercept + self.defense_slope * math.log10(defense_flops)
                            + self.size_slope * math.log10(n_params)))


def _lstsq(use: Sequence[OffenseDefensePoint], with_size: bool) -> tuple[np.ndarray, float]:
    y = np.array([math.log10(p.attack_flops) for p in use])  # type: ignore[arg-type]
    cols = [np.ones(len(use)), np.array([math.log10(p.defense_flops) for p in use])]
    if with_size:
        cols.append(np.array([math.log10(p.n_params) for p in use]))
    x = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return coef, (1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else math.nan)


def fit_offense_defense(points: Sequence[OffenseDefensePoint], *, bootstrap: int = 200,
                        seed: int = 0) -> OffenseDefenseFit:
    """Least-squares fit in log space over the points whose attack reached the target (positive FLOPs),
    with bootstrap intervals on the slopes. The points should come from one attack (`fit_by_attack`):
    GCG and RandomToken FLOPs are different currencies."""
    use = [p for p in points if p.attack_flops and p.attack_flops > 0 and p.defense_flops > 0]
    attacks = sorted({p.attack for p in use})
    sizes = sorted({p.n_params for p in use})
    per_size = {}
    for n in sizes:
        xs = [math.log10(p.defense_flops) for p in use if p.n_params == n]
        ys = [math.log10(p.attack_flops) for p in use if p.n_params == n]  # type: ignore[arg-type]
        per_size[n] = float(np.polyfit(xs, ys, 1)[0]) if len(set(xs)) >= 2 else float("nan")
    with_size = len(sizes) >= 2
    n_coef = 3 if with_size else 2
    attack = ",".join(attacks)
    if len(use) < n_coef + 1:
        return OffenseDefenseFit("too_few_points", math.nan, math.nan, math.nan, len(use), math.nan, per_size,
                                 attack=attack)
    coef, r2 = _lstsq(use, with_size)
    size_slope = float(coef[2]) if with_size else 0.0
    intervals: dict[str, tuple[float, float]] = {}
    status = "ok"
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(bootstrap):
            sample = [use[i] for i in rng.integers(0, len(use), len(use))]
            if len({p.defense_flops for p in sample}) < 2 or (with_size and len({p.n_params for p in sample}) < 2):
                continue  # a resample that cannot pin the slopes down
            draws.append(_lstsq(sample, with_size)[0])
        if len(draws) < 20:
            status = "poorly_identified"
        else:
            arr = np.array(draws)
            names = ["defense_slope", "size_slope"][: n_coef - 1]
            for k, name in enumerate(names, start=1):
                lo, hi = np.percentile(arr[:, k], [2.5, 97.5])
                intervals[name] = (float(lo), float(hi))
                if hi - lo > abs(float(coef[k])):
                    status = "poorly_identified"
    return OffenseDefenseFit(status, float(coef[0]), float(coef[1]), size_slope, len(use), r2, per_size, intervals,
                             attack)


def fit_by_attack(points: Sequence[OffenseDefensePoint], *, bootstrap: int = 200,
                  seed: int = 0) -> dict[str, OffenseDefenseFit]:
    """One fit per attack (the FLOPs of different attacks are not comparable)."""
    attacks = sorted({p.attack for p in points})
    return {a: fit_offense_defense([p for p in points if p.attack == a], bootstrap=bootstrap, seed=seed)
            for a in attacks}


def plot_offense_defense(points: Sequence[OffenseDefensePoint], fit: OffenseDefenseFit, *,
                         target_asr: float) -> Any:
    """Figure: attack FLOPs to reach ``target_asr`` vs defence FLOPs, one colour per size, with the fit."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    sizes = sorted({p.n_params for p in points})
    for n in sizes:
        mine = sorted((p for p in points if p.n_params == n and p.attack_flops), key=lambda p: p.defense_flops)
        if not mine:
            continue
        xs = [p.defense_flops for p in mine]
        ys = [float(p.attack_flops or 0.0) for p in mine]
        line = ax.plot(xs, ys, "o", alpha=0.7, label=f"{n / 1e6:.2f}M params")[0]
        if fit.status in ("ok", "poorly_identified"):
            grid = np.geomspace(min(xs), max(xs), 20)
            ax.plot(grid, [fit.predict(g, n) for g in grid], "-", color=line.get_color())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("defence FLOPs (fine-tune + adversarial training)")
    ax.set_ylabel(f"attack FLOPs per prompt to reach ASR {target_asr:.0%}")
    if fit.status in ("ok", "poorly_identified"):
        lo, hi = fit.intervals.get("defense_slope", (math.nan, math.nan))
        ax.set_title(f"{fit.attack or 'attack'}: slope {fit.defense_slope:.2f} [{lo:.2f}, {hi:.2f}] (defence), "
                     f"{fit.size_slope:.2f} (size); R² {fit.r2:.2f}; {fit.status}", fontsize=8)
    else:
        ax.set_title(f"{fit.attack or 'attack'}: no fit ({fit.status}, {fit.n_points} points)", fontsize=8)
    if not ax.lines:
        ax.text(0.5, 0.5, f"no run reached ASR {target_asr:.0%}", ha="center", va="center", transform=ax.transAxes)
        fig.robustperf_empty = f"no run reached ASR {target_asr:.0%}"  # type: ignore[attr-defined]
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


STEP_NAMES = {"gcg": "GCG iteration", "random_token": "RandomToken query"}


def plot_asr_vs_steps(curves: dict[tuple[str, int], list[np.ndarray]], *, round_: int = 0) -> Any:
    """Figure: ASR vs attack steps, one panel per attack, one line per model size (median over the runs
    of that size, shaded min-max), as papers/000 draws its seed bands."""
    from matplotlib.figure import Figure

    attacks = sorted({a for a, _ in curves})
    fig = Figure(figsize=(5.0 * max(1, len(attacks)), 4))
    axes = [fig.add_subplot(1, max(1, len(attacks)), i + 1) for i in range(max(1, len(attacks)))]
    if not attacks:
        axes[0].text(0.5, 0.5, "no runs with per-prompt success steps", ha="center", va="center",
                     transform=axes[0].transAxes)
        fig.robustperf_empty = "no runs with per-prompt success steps"  # type: ignore[attr-defined]
        return fig
    for ax, attack in zip(axes, attacks, strict=True):
        sizes = sorted(n for a, n in curves if a == attack)
        for n in sizes:
            runs = curves[(attack, n)]
            width = min(len(c) for c in runs)
            stack = np.vstack([c[:width] for c in runs])
            steps = np.arange(width)
            line = ax.plot(steps, np.nanmedian(stack, axis=0), label=f"{n / 1e6:.2f}M params ({len(runs)} runs)")[0]
            if len(runs) > 1:
                ax.fill_between(steps, np.nanmin(stack, axis=0), np.nanmax(stack, axis=0), color=line.get_color(),
                                alpha=0.2, lw=0)
        ax.set_xlabel(STEP_NAMES.get(attack, f"{attack} step"))
        ax.set_ylabel("attack success rate")
        ax.set_ylim(0, 1)
        ax.set_title(f"{attack or 'attack'} at round {round_} (median, min-max over seeds)", fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
