"""`run_study`: expand a study, run it on an executor, rebuild the index once at the end.

The study itself is saved as ``runs_dir/studies/<name>.json`` (with its run ids), so
``robustperf report runs_dir`` later knows which runs belong to it and which laws and forecasts it asked for.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustperf.store import read_json, rebuild_index, write_json_atomic
from robustperf.sweep.executors import ExecutionResult, Executor, create_executor
from robustperf.sweep.run import run_one
from robustperf.sweep.study import StudyConfig, expand, study_from_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyResult:
    """What `run_study` returns."""

    study: StudyConfig
    runs_dir: Path
    run_ids: tuple[str, ...]
    execution: ExecutionResult | None  # None for a plan that ran nothing
    index_path: Path | None
    manifest_path: Path | None
    wall_seconds: float


def study_fn(study: StudyConfig) -> Any:
    """The picklable per-run function of a study: `run_one` with the study's evaluation bound."""
    return functools.partial(run_one, evaluate=study.evaluate.model_dump(mode="json"))


def save_study(study: StudyConfig, runs_dir: str | Path, run_ids: list[str]) -> Path:
    """Write ``runs_dir/studies/<name>.json``: the study config and the run ids it expands to."""
    path = Path(runs_dir) / "studies" / f"{study.name}.json"
    write_json_atomic(path, {"study": study.model_dump(mode="json"), "run_ids": run_ids})
    return path


def load_saved_study(path: str | Path) -> tuple[StudyConfig, list[str]]:
    """Read what `save_study` wrote."""
    data = read_json(path)
    return study_from_dict(data["study"]), list(data["run_ids"])


def run_study(study: StudyConfig, runs_dir: str | Path | None = None, *, executor: str | Executor | None = None,
              workers: int | None = None, plan: bool = False) -> StudyResult:
    """Run every run of `study` (skipping finished ones) and rebuild the index.

    Args:
        study: the study.
        runs_dir: overrides ``study.runs_dir``.
        executor: an executor name (overrides ``study.executor.name``) or an Executor instance.
        workers: overrides ``study.executor.workers``.
        plan: only write the manifest and scheduler scripts (the ``manifest`` executor with ``submit=False``).
    """
    start = time.perf_counter()
    root = Path(runs_dir or study.runs_dir).resolve()
    configs = expand(study)  # validates every grid point before anything runs
    run_ids = [c.run_id for c in configs]
    root.mkdir(parents=True, exist_ok=True)
    save_study(study, root, run_ids)
    ex = _make_executor(study, executor, workers, plan)
    log.info("study %s: %d runs on the %s executor in %s", study.name, len(configs), ex.name, root)
    with ex:
        execution = ex.run(study_fn(study), [c.resolved() for c in configs], root)
    manifest = getattr(ex, "manifest_path", None)
    index = None if plan else rebuild_index(root)
    return StudyResult(study, root, tuple(run_ids), None if plan else execution, index, manifest,
                       time.perf_counter() - start)


def _make_executor(study: StudyConfig, executor: str | Executor | None, workers: int | None, plan: bool) -> Executor:
    if isinstance(executor, Executor):
        return executor
    name = "manifest" if plan else (executor or study.executor.name)
    changes: dict[str, Any] = {}
    if workers is not None:
        changes["workers"] = workers
    if plan:
        changes["submit"] = False
    ex = create_executor(name, study.executor, **changes)
    if hasattr(ex, "manifest_name"):
        ex.manifest_name = study.name
    return ex
