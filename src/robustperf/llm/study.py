"""Offline study: adversarial-training runs over a grid of model sizes and attacks, several seeds each,
reduced to an attack-success-rate-vs-round table (min/median/max over seeds, papers/000 App. E).

A study file is YAML::

    name: quickstart
    base: {...an LLMConfig...}          # seeds: [0, 1] -> one run per seed
    grid:                               # dotted keys -> values; the product is run
      model.name: [neox-tiny, neox-small, neox-medium]
      attack.name: [gcg, random_token]

Every grid point x seed is one `run_advtrain` run in the run store (idempotent: finished runs are
reused). Two CSVs are written next to the runs: ``<name>_rounds.csv`` (one row per run and round)
and ``<name>_asr_vs_round.csv`` (one row per grid point and round, ready for plotting).
"""

from __future__ import annotations

import csv
import itertools
import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robustperf.config import ConfigError, apply_overrides, format_validation_error, load_yaml_mapping
from robustperf.llm.config import LLMConfig, llm_config_from_dict
from robustperf.llm.metrics import min_median_max
from robustperf.store import RunDir
from robustperf.store.names import check_name

logger = logging.getLogger(__name__)


class StudyConfig(BaseModel):
    """A grid of LLM adversarial-training configs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "study"
    base: dict[str, Any] = Field(default_factory=dict, description="an LLMConfig as a mapping")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values to sweep")

    def configs(self) -> list[LLMConfig]:
        """One validated config per grid point (each may still hold several seeds)."""
        keys = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            data = apply_overrides(self.base, dict(zip(keys, values, strict=True)))
            out.append(llm_config_from_dict(data))
        return out


def load_study(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    """Read a study YAML; ``overrides`` apply to ``base`` (e.g. ``rounds.n_rounds=2``)."""
    data = load_yaml_mapping(path, "study file", "configs/llm_quickstart_study.yaml")
    try:
        study = StudyConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, f"study file {str(path)!r}")) from None
    check_name(study.name, "study name")  # it names the CSVs written next to the runs
    if overrides:
        study = study.model_copy(update={"base": apply_overrides(study.base, overrides)})
    study.configs()  # validate every grid point before any work
    return study


def run_study(study: StudyConfig, runs_dir: str | Path = "runs",
              on_run: Callable[[int, int, RunDir], None] | None = None) -> tuple[Path, Path]:
    """Run every grid point x seed (skipping finished runs) and write the two CSVs; returns their paths."""
    from robustperf.llm.pipeline import run_advtrain

    runs = [c for cfg in study.configs() for c in cfg.per_seed()]
    dirs = []
    for i, cfg in enumerate(runs):
        rd = run_advtrain(cfg, runs_dir)
        dirs.append(rd)
        if on_run:
            on_run(i + 1, len(runs), rd)
    rows = round_rows(dirs)
    root = Path(runs_dir)
    long_path, table_path = root / f"{study.name}_rounds.csv", root / f"{study.name}_asr_vs_round.csv"
    write_csv(long_path, rows)
    write_csv(table_path, asr_vs_round(rows))
    return long_path, table_path


def round_rows(dirs: list[RunDir]) -> list[dict[str, Any]]:
    """One row per (run, round) from the runs' config and metrics."""
    from robustperf.llm.pipeline import final_metrics

    out = []
    for rd in dirs:
        cfg = rd.read_config()
        final = final_metrics(rd)
        eval_attack = (cfg["rounds"].get("eval_attack") or cfg["attack"])["name"]
        for m in rd.read_metrics():
            out.append({"run_id": rd.run_id, "model": cfg["model"]["name"], "n_params": final.get("n_params"),
                        "task": cfg["task"]["name"], "attack": cfg["attack"]["name"], "eval_attack": eval_attack,
                        "seed": cfg["seeds"][0], "round": m["round"], "asr": m.get("asr"),
                        "clean_acc": m.get("clean_acc"), "pool_size": m.get("pool_size"),
                        "round_flops": m.get("round_flops"), "cum_flops": m.get("cum_flops"),
                        "seconds": m.get("seconds")})
    return out


def asr_vs_round(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """min/median/max ASR over seeds per (model, task, attack, eval_attack, round)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["n_params"], r["task"], r["attack"], r["eval_attack"], r["round"])].append(r)
    out = []
    for (model, n_params, task, attack, eval_attack, rnd), group in sorted(groups.items(), key=lambda kv: (
            kv[0][1] or 0, kv[0][3], kv[0][4], kv[0][5])):
        asr = min_median_max([g["asr"] for g in group])
        acc = min_median_max([g["clean_acc"] for g in group])
        flops = min_median_max([g["cum_flops"] for g in group])
        out.append({"model": model, "n_params": n_params, "task": task, "attack": attack, "eval_attack": eval_attack,
                    "round": rnd, "n_seeds": len(group), "asr_min": asr["min"], "asr_median": asr["median"],
                    "asr_max": asr["max"], "clean_acc_median": acc["median"], "cum_flops_median": flops["median"]})
    return out


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows (same keys) to CSV, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    tmp.replace(path)
