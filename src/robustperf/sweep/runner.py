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

from robustperf.config import RunConfig
from robustperf.names import check_name, path_under
from robustperf.store import read_json, rebuild_index, write_json_atomic
from robustperf.store.lock import is_locked, study_lock
from robustperf.sweep.executors import EXECUTORS, ExecutionResult, Executor, ExecutorError, create_executor
from robustperf.sweep.run import INTERRUPTED, LOCKED, run_one
from robustperf.sweep.study import StudyConfig, StudyError, expand, study_from_dict

log = logging.getLogger(__name__)


def check_study(study: StudyConfig, configs: list[RunConfig], *, plan: bool = False,
                executor: str | Any | None = None) -> None:
    """Everything about a study that can be checked before a run starts, so a typo is not found after training.

    The executor name and its keys, every model and training-method name of the grid, the evaluation's attack names,
    and each distinct data section (its ``n_train`` against the data set's real size: `check_data`).

    Raises:
        StudyError: the first unusable name or size, with the key that holds it and the fix.
    """
    from robustperf.registry import RegistryError

    name = "manifest" if plan else (executor if isinstance(executor, str) else None) or study.executor.name
    checks: list[tuple[str, Any]] = []
    if executor is None or isinstance(executor, str):
        checks.append(("executor.name", lambda: EXECUTORS.get(name)))
    if study.evaluate.attacks:
        from robustperf.attacks.base import ATTACKS

        for attack in study.evaluate.attacks:
            if attack != "autoattack":
                checks.append(("evaluate.attacks", lambda a=attack: ATTACKS.get(a)))
    if configs:
        from robustperf.models import MODELS
        from robustperf.training.methods import METHODS

        for model in sorted({c.model.name for c in configs}):
            checks.append(("model.name", lambda m=model: MODELS.get(m)))
        for method in sorted({c.method.name for c in configs}):
            checks.append(("method.name", lambda m=method: METHODS.get(m)))
    for key, check in checks:
        try:
            check()
        except RegistryError as err:
            raise StudyError(f"study {study.name!r}, {key}: {err}") from None
    if executor is None or isinstance(executor, str):
        try:  # construction does no work: it picks the executor's settings out of the block, or names a stray key
            create_executor(name, study.executor)
        except ExecutorError as err:
            raise StudyError(f"study {study.name!r}, {err}") from None
    from robustperf.data import DataError, check_data

    largest: dict[str, RunConfig] = {}  # per data source, the grid point asking for the most samples
    for cfg in configs:
        key = cfg.data.model_copy(update={"n_train": None, "n_test": None}).model_dump_json()
        if key not in largest or (cfg.data.n_train or 0) > (largest[key].data.n_train or 0):
            largest[key] = cfg
    for cfg in largest.values():
        try:
            check_data(cfg.data)
        except (DataError, RegistryError) as err:
            if plan and isinstance(err, DataError):  # planned here, run on a cluster whose file system has the data
                log.warning("study %r: %s (the tasks will fail unless the cluster has it)", study.name, err)
                continue
            raise StudyError(f"study {study.name!r}: {err}") from None


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
    path = path_under(runs_dir, "studies", f"{check_name(study.name, 'study name')}.json")
    write_json_atomic(path, {"study": study.model_dump(mode="json"), "run_ids": run_ids})
    return path


def load_saved_study(path: str | Path) -> tuple[StudyConfig, list[str]]:
    """Read what `save_study` wrote."""
    data = read_json(path)
    return study_from_dict(data["study"]), list(data["run_ids"])


def run_study(study: StudyConfig, runs_dir: str | Path | None = None, *, executor: str | Executor | None = None,
              workers: int | None = None, plan: bool = False, force: bool = False) -> StudyResult:
    """Run every run of `study` (skipping finished ones) and rebuild the index.

    Args:
        study: the study.
        runs_dir: overrides ``study.runs_dir``.
        executor: an executor name (overrides ``study.executor.name``) or an Executor instance.
        workers: overrides ``study.executor.workers``.
        plan: only write the manifest and scheduler scripts (the ``manifest`` executor with ``submit=False``).
        force: take the study's lock even though it is reported as held (only once its holder is gone).

    Runs that another process holds are skipped and retried once it lets them go.

    Raises:
        RunLockedError: another live process is running this study on this runs directory.
        UnsafeNameError: the study name is not a safe name.
        StudyError: a run, attack, model or executor name, or a data size, is unusable (found at plan time).
    """
    start = time.perf_counter()
    check_name(study.name, "study name")
    root = Path(runs_dir or study.runs_dir).resolve()
    configs = expand(study)  # validates every grid point before anything runs
    check_study(study, configs, plan=plan, executor=executor)  # names and sizes, before anything is written
    run_ids = [c.run_id for c in configs]
    root.mkdir(parents=True, exist_ok=True)
    with study_lock(root, study.name, force=force):  # one owner per study; runs have their own locks
        save_study(study, root, run_ids)
        ex = _make_executor(study, executor, workers, plan)
        log.info("study %s: %d runs on the %s executor in %s", study.name, len(configs), ex.name, root)
        fn, resolved = study_fn(study), [c.resolved() for c in configs]
        with ex:
            execution = ex.run(fn, resolved, root)
            if not plan:
                execution = _retry_locked(ex, fn, resolved, root, execution)
                execution = _retry_interrupted(ex, fn, resolved, root, execution, study.executor.max_retries)
        manifest = getattr(ex, "manifest_path", None)
        index = None if plan else rebuild_index(root)
    return StudyResult(study, root, tuple(run_ids), None if plan else execution, index, manifest,
                       time.perf_counter() - start)


def _retry_locked(ex: Executor, fn: Any, configs: list[dict[str, Any]], root: Path, execution: ExecutionResult,
                  poll_seconds: float = 0.5) -> ExecutionResult:
    """Run again the runs another process held (status ``locked``), each once its holder lets go.

    Another study (or a `robustperf train`) on the same runs directory finishes such a run, so the retry
    usually just finds it finished and skips it: no run is ever trained twice at the same time.
    """
    t0 = time.perf_counter()
    results = list(execution.results)
    waited_since = time.monotonic()
    while True:
        held = [i for i, r in enumerate(results) if r.get("status") == LOCKED]
        if not held:
            break
        free = [i for i in held if not is_locked(root / str(results[i].get("run_id")))]
        if not free:
            if time.monotonic() - waited_since > 60:
                log.info("still waiting for %d run(s) held by other processes", len(held))
                waited_since = time.monotonic()
            time.sleep(poll_seconds)
            continue
        # the manifest executor writes its manifest from what it is given: give it the whole study again
        # (finished runs are skipped) so the manifest on disk keeps every index
        batch = list(range(len(configs))) if ex.name in ("manifest", "slurm") else free
        again = ex.run(fn, [configs[i] for i in batch], root)
        for i, result in zip(batch, again.results, strict=True):
            if i in free:
                results[i] = result
    wall = execution.wall_seconds + (time.perf_counter() - t0)
    return ExecutionResult(tuple(results), wall, execution.executor)


def _retry_interrupted(ex: Executor, fn: Any, configs: list[dict[str, Any]], root: Path, execution: ExecutionResult,
                       retries: int) -> ExecutionResult:
    """Run again (up to `retries` times) the runs a stop signal interrupted (preemption of a worker, a
    scheduler's warning): each resumes from its step checkpoint. A signal to the study itself ends the study
    before it gets here, so this never fights a user's Ctrl-C."""
    results = list(execution.results)
    wall = execution.wall_seconds
    for attempt in range(1, retries + 1):
        stopped = [i for i, r in enumerate(results) if r.get("status") == INTERRUPTED]
        if not stopped:
            break
        log.warning("retry %d/%d: %d interrupted run(s) resume from their checkpoints", attempt, retries, len(stopped))
        batch = list(range(len(configs))) if ex.name in ("manifest", "slurm") else stopped  # keep every index
        again = ex.run(fn, [configs[i] for i in batch], root)
        wall += again.wall_seconds
        for i, result in zip(batch, again.results, strict=True):
            if i in stopped:
                results[i] = result
    return ExecutionResult(tuple(results), wall, execution.executor)


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
        ex.manifest_name = check_name(study.name, "study name")
    return ex
