"""Offline study: adversarial-training runs over a grid of model sizes and attacks, several seeds each,
reduced to an attack-success-rate-vs-round table (min/median/max over seeds, papers/000 App. E).

A study file is YAML::

    name: quickstart
    base: {...an LLMConfig...}          # seeds: [0, 1] -> one run per seed
    grid:                               # dotted keys -> values; the product is run
      model.name: [neox-tiny, neox-small, neox-medium]
      attack.name: [gcg, random_token]

    variants:                           # optional: settings that go together, crossed with the grid
      - {model.name: neox-tiny, training.epochs: 2}
      - {model.name: neox-small, training.epochs: 4}
    executor: {name: local, workers: 2}   # any sweep executor: local, manifest (Slurm/LSF/PBS), submitit, ray

Every grid point x seed is one `run_advtrain` run in the run store (idempotent: finished runs are
reused), run on the study's executor (`robustperf.sweep.executors`) like an image study: first the
fine-tune runs the grid points share (each once), then the adversarial-training runs. Two CSVs are
written next to the runs: ``<name>_rounds.csv`` (one row per run and round) and
``<name>_asr_vs_round.csv`` (one row per grid point and round, ready for plotting), and the trends with
size and rounds against the seed spread (`robustperf.llm.trends`) as ``<name>_trends.{json,md}``.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robustperf.config import ConfigError, apply_overrides, format_validation_error, load_yaml_mapping
from robustperf.llm.config import LLMConfig, llm_config_from_dict
from robustperf.llm.metrics import min_median_max
from robustperf.names import check_name
from robustperf.store import RunDir, write_text_atomic
from robustperf.sweep.executors import ExecutionResult, Executor, create_executor
from robustperf.sweep.study import ExecutorSpec

logger = logging.getLogger(__name__)


class StudyConfig(BaseModel):
    """A grid of LLM adversarial-training configs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "study"
    base: dict[str, Any] = Field(default_factory=dict, description="an LLMConfig as a mapping")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values to sweep")
    variants: list[dict[str, Any]] = Field(
        default_factory=list, description="dotted-key mappings applied together (e.g. a model with its own "
                                          "training settings), crossed with the grid; empty: the grid alone")
    executor: ExecutorSpec = Field(default_factory=lambda: ExecutorSpec(gpus_per_run=0),
                                   description="where the runs execute (the sweep executors; CPU by default)")

    def configs(self) -> list[LLMConfig]:
        """One validated config per grid point (each may still hold several seeds)."""
        keys = list(self.grid)
        out = []
        for variant in self.variants or [{}]:
            for values in itertools.product(*(self.grid[k] for k in keys)):
                data = apply_overrides(self.base, {**dict(zip(keys, values, strict=True)), **variant})
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


def run_study(study: StudyConfig, runs_dir: str | Path = "runs", *, executor: str | Executor | None = None,
              workers: int | None = None) -> tuple[Path, Path, ExecutionResult]:
    """Run every grid point x seed on the study's executor (finished runs are skipped) and write the CSVs.

    Args:
        study: the study.
        runs_dir: where the run directories go.
        executor: an executor name (overrides ``study.executor.name``) or an Executor instance.
        workers: overrides ``study.executor.workers``.

    Returns:
        (per-run rounds CSV, ASR-vs-round CSV, what the executor reported for the adversarial-training runs).
    """
    runs = list({c.run_id("advtrain"): c for cfg in study.configs() for c in cfg.per_seed()}.values())  # a variant
    # may repeat a grid point: each run once
    finetunes = {c.run_id("finetune"): _payload(c, "finetune") for c in runs}  # shared by grid points: once each
    root = Path(runs_dir).resolve()
    # two phases, so that no two adversarial-training runs fine-tune the same model at once (with a
    # scheduler: submit the advtrain array to start after the finetune array, e.g. sbatch --dependency)
    with _executor(study, executor, workers, "finetune") as ex:
        ex.run(run_llm_one, list(finetunes.values()), root)
    with _executor(study, executor, workers, "advtrain") as ex:
        execution = ex.run(run_llm_one, [_payload(c, "advtrain") for c in runs], root)
    for r in execution.results:
        if r.get("status") == "failed":
            logger.error("run %s failed: %s", r.get("run_id"), r.get("failure_reason"))
    dirs = [RunDir.for_run(root, c.run_id("advtrain")) for c in runs]
    rows = round_rows([rd for rd in dirs if rd.is_finished()])
    long_path, table_path = root / f"{study.name}_rounds.csv", root / f"{study.name}_asr_vs_round.csv"
    write_csv(long_path, rows)
    write_csv(table_path, asr_vs_round(rows))
    write_trends(root, study.name, rows)
    return long_path, table_path, execution


def write_trends(root: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    """``<name>_trends.json`` and ``.md``: does ASR fall with size and rounds, against the seed spread."""
    import json

    from robustperf.llm.trends import asr_trends, trends_markdown
    from robustperf.store.record import describe_machine

    trends = asr_trends(rows)
    machine = describe_machine()
    write_text_atomic(root / f"{name}_trends.json", json.dumps({"machine": machine, "trends": trends}, indent=1))
    path = root / f"{name}_trends.md"
    write_text_atomic(path, trends_markdown(trends, machine=machine))
    return path


def _payload(cfg: LLMConfig, command: str) -> dict[str, Any]:
    return {"run_id": cfg.run_id(command), "command": command, "config": cfg.resolved()}


def _executor(study: StudyConfig, executor: str | Executor | None, workers: int | None, phase: str) -> Executor:
    if isinstance(executor, Executor):
        return executor
    ex = create_executor(executor or study.executor.name, study.executor,
                         **({"workers": workers} if workers is not None else {}))
    if hasattr(ex, "manifest_name"):
        ex.manifest_name = f"{study.name}-{phase}"
    return ex


def run_llm_one(payload: dict[str, Any], runs_dir: str) -> dict[str, Any]:
    """Run one LLM run of a study (what the executors call; picklable by reference) through the study's one
    entry runner (`robustperf.sweep.run.run_entry`, as `run_one` runs an image run); never raises for the
    run's own failure, which its record holds.

    Args:
        payload: ``{"run_id", "command": "finetune" | "attack" | "advtrain", "config": resolved LLMConfig}``.
        runs_dir: where the run directories go.

    Returns:
        `run_one`'s summary (`robustperf.sweep.run.SUMMARY_KEYS`): ``status`` finished | skipped | failed |
        interrupted | locked (another live process holds the run, or the fine-tune it starts from: nothing was
        done; run the study again later); ``evaluation`` None (LLM runs carry their attacks in their rounds).
    """
    from robustperf.llm.pipeline import COMMANDS
    from robustperf.sweep.run import run_entry

    def work() -> None:
        COMMANDS[payload["command"]](llm_config_from_dict(payload["config"]), runs_dir)

    return run_entry(RunDir.for_run(runs_dir, payload["run_id"]), payload["config"], work)


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
                        "clean_acc": m.get("clean_acc"), "n_attacked": m.get("n_val_attacked"),
                        "n_relabelled": m.get("n_val_relabelled"), "pool_size": m.get("pool_size"),
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
    text = io.StringIO(newline="")
    if rows:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(path, text.getvalue())
