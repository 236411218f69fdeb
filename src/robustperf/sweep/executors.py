"""Executors: one `concurrent.futures`-style interface over a local pool, a scheduler manifest, submitit and Ray.

Every executor takes any picklable ``fn(config_dict, runs_dir) -> dict`` (the study uses
`robustperf.sweep.run.run_one`) and offers ``submit(fn, config, runs_dir) -> Future``,
``shutdown()``, and the one verb ``run(fn, configs, runs_dir) -> ExecutionResult``, which submits every
config, waits, and turns a crashed worker into a ``failed`` entry instead of an exception (DESIGN.md
"Scale-out"). Construction does no work: pools and clusters start on first submit.

- ``local``: `ProcessPoolExecutor` with the ``spawn`` context and one fresh process per run
  (``max_tasks_per_child=1``); each worker holds one GPU slot (``CUDA_VISIBLE_DEVICES``), CPU workers
  get ``cores // workers`` torch threads; a run that kills its process fails alone. Workers die with the
  study (`die_with_parent`): a killed study leaves no orphan training beside its rerun.
- ``manifest``: writes ``manifest.jsonl`` and sbatch/bsub/qsub array scripts (`robustperf.sweep.manifest`)
  and, unless ``submit=False``, runs each index as its own ``robustperf run-one`` process.
- ``slurm``: the manifest's sbatch array submitted to this machine's Slurm and waited for.
- ``submitit``: Slurm job arrays through submitit (``cluster="local"`` runs them as local processes),
  with an array-parallelism limit and requeue on preemption.
- ``ray``: one Ray task per run with its GPU share, or a placement group of one bundle per rank for a run
  of several processes (optional dependency ``robustperf[ray]``).

Each executor takes its own frozen settings class (`LocalSettings`, `ManifestSettings`, ...), declared next to
it: the keys of the study's ``executor:`` block it reads. `ExecutorSpec` (sweep/study.py) is that block as
written; `create_executor` picks the chosen executor's keys out of it and refuses a key it does not take,
naming the keys it does. Adding an executor: its class, its settings class and its
``@EXECUTORS.register`` line, in this file (or in a plug-in's own module, found through its entry point).

A run of ``executor.world_size > 1`` processes (``gpus_per_run``/``procs_per_run`` x ``nodes_per_run``) is
one job of that many ranks on every cluster executor: srun (manifest scripts), one task per rank
(submitit), a placement group (Ray); `run_one` makes the ranks one run with rank 0 owning it.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robustperf.config import format_validation_error
from robustperf.registry import Registry
from robustperf.sweep.study import ExecutorSpec, RankLayout, run_id_of

log = logging.getLogger(__name__)

RunFn = Callable[[dict[str, Any], str], dict[str, Any]]


class ExecutorError(ValueError):
    """An executor that cannot run here (missing package, bad settings); the message names the fix."""


@dataclass(frozen=True)
class ExecutionResult:
    """What `Executor.run` returns: one summary per config (input order) and the wall time."""

    results: tuple[dict[str, Any], ...]
    wall_seconds: float
    executor: str

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.get("status") == status)

    @property
    def n_failed(self) -> int:
        return self.count("failed")


class ExecutorSettings(BaseModel):
    """The keys of a study's ``executor:`` block that every executor takes; each executor's settings add theirs.

    Defaults and bounds are those of `ExecutorSpec`, which holds the block as written.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpus_per_run: int = Field(1, ge=0, description="GPUs of one run (0: train on CPU)")
    max_retries: int = Field(2, ge=0, description="times a study reruns a run a stop signal interrupted")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The keys this executor reads from the ``executor:`` block (besides ``name``)."""
        return tuple(sorted(cls.model_fields))


class RankShape(RankLayout, ExecutorSettings):
    """The settings of an executor that starts a run as several processes (ranks) on one or more nodes."""

    nodes_per_run: int = Field(1, ge=1, description="nodes of one run")
    procs_per_run: int | None = Field(None, ge=1, description="ranks per node (default: gpus_per_run, or 1 on CPU)")
    cpus_per_run: int | None = Field(None, ge=1, description="CPU cores per rank (default: cpus_per_gpu per GPU, "
                                     "else 1)")
    cpus_per_gpu: int = Field(8, ge=1, description="cores requested per GPU rank")


class ClusterShape(RankShape):
    """A `RankShape` asked of a batch scheduler: memory, a time limit, a partition, array parallelism."""

    mem_per_gpu_gb: int = Field(32, ge=0, description="host memory requested per GPU rank (GiB; 0: none)")
    mem_per_cpu_rank_gb: int = Field(4, ge=0, description="host memory requested per CPU-only rank (GiB; 0: none)")
    partition: str | None = None
    timeout_min: int = Field(240, ge=1)
    array_parallelism: int = Field(64, ge=1, description="at most this many array tasks at once")

    @property
    def mem_per_rank_gb(self) -> int:
        """Host memory (GiB) requested for each rank."""
        return self.mem_per_gpu_gb if self.gpus_per_run else self.mem_per_cpu_rank_gb


class Executor:
    """Base class: subclasses implement `submit` (and `shutdown` when they hold resources).

    ``settings_class`` names the keys of the ``executor:`` block the executor reads; an instance holds
    them as ``settings`` and the whole block (for the scheduler scripts) as ``spec``.
    """

    name: ClassVar[str] = ""
    settings_class: ClassVar[type[ExecutorSettings]] = ExecutorSettings

    def __init__(self, spec: ExecutorSpec | None = None) -> None:
        self.spec = spec or ExecutorSpec(name=self.name)
        self.settings = settings_for(type(self), self.spec, strict=False)

    def submit(self, fn: RunFn, config: dict[str, Any], runs_dir: str) -> cf.Future:
        raise NotImplementedError

    def submit_many(self, fn: RunFn, configs: Sequence[dict[str, Any]], runs_dir: str) -> list[cf.Future]:
        """Submit every config; array-capable executors override this to submit one job array."""
        return [self.submit(fn, c, runs_dir) for c in configs]

    def shutdown(self, wait: bool = True) -> None:
        """Release workers and cluster handles."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)

    def run(self, fn: RunFn, configs: Sequence[dict[str, Any]], runs_dir: str | Path) -> ExecutionResult:
        """Run every config and wait; a worker crash becomes a ``failed`` summary for that config."""
        start = time.perf_counter()
        runs_dir = str(Path(runs_dir).resolve())
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        futures = self.submit_many(fn, list(configs), runs_dir)
        index = {f: i for i, f in enumerate(futures)}
        results: list[dict[str, Any]] = [{} for _ in futures]
        try:
            for n_done, fut in enumerate(cf.as_completed(futures), start=1):
                i = index[fut]
                results[i] = _outcome(fut, configs[i])
                log.info("[%d/%d] %s %s", n_done, len(futures), results[i].get("run_id"), results[i].get("status"))
        except BaseException:  # Ctrl-C: start nothing new; runs already going resume on the next call
            self.shutdown(wait=False)
            raise
        self.shutdown(wait=True)
        return ExecutionResult(tuple(results), time.perf_counter() - start, self.name)


def _outcome(fut: cf.Future, config: dict[str, Any]) -> dict[str, Any]:
    try:
        out = fut.result()
    except BaseException as exc:  # the worker died (OOM kill, segfault, preemption without requeue)
        return {"run_id": _run_id(config), "status": "failed", "failure_reason": f"worker crashed: {exc!r}"}
    return out if isinstance(out, dict) else {"run_id": _run_id(config), "status": "finished", "value": out}


def _run_id(config: dict[str, Any]) -> str | None:
    try:
        return run_id_of(config)
    except ValueError:
        return None


EXECUTORS: Registry[type[Executor]] = Registry("executor")


def create_executor(name: str, spec: ExecutorSpec | None = None, **changes: Any) -> Executor:
    """Build an executor by name; ``changes`` override fields of `spec` (e.g. ``workers=2``).

    Raises:
        ExecutorError: a key of the block that no executor takes; or, when the block names this executor
            (``name``, default ``local``), a key this executor does not take (the message lists the keys it
            does). A block written for another executor (the CLI's ``--executor``, ``--plan``) gives this
            one the keys it takes and leaves the others.
    """
    cls = EXECUTORS.get(name)
    base = spec or ExecutorSpec(name=name)
    full = base.model_copy(update={"name": name, **changes})
    settings_for(cls, full, strict=base.name == name)  # strict for the executor the block names (default local)
    return cls(full)


def settings_for(cls: type[Executor], spec: ExecutorSpec, strict: bool = True) -> ExecutorSettings:
    """The settings of executor class `cls` out of an ``executor:`` block (only the keys it sets).

    Raises:
        ExecutorError: a key no registered executor takes; with `strict`, also a key `cls` does not take.
    """
    given = {k: v for k, v in spec.model_dump(exclude_unset=True).items() if k != "name"}
    valid = cls.settings_class.model_fields
    known = set(ExecutorSpec.model_fields)
    for other in EXECUTORS.names():
        known.update(EXECUTORS.get(other).settings_class.model_fields)
    foreign = sorted(k for k in given if k not in valid and (strict or k not in known))
    if foreign:
        what = "a key of no executor" if any(k not in known for k in foreign) else "not a key of this executor"
        raise ExecutorError(f"executor {cls.name!r}: {', '.join(map(repr, foreign))} {what}; the {cls.name} "
                            f"executor takes: name, {', '.join(cls.settings_class.keys())}")
    try:
        return cls.settings_class.model_validate({k: v for k, v in given.items() if k in valid})
    except ValidationError as err:
        raise ExecutorError(format_validation_error(err, f"{cls.name} executor settings")) from None


# ---------------------------------------------------------------- local pool


def visible_gpus() -> list[str]:
    """GPU ids this process may hand out: CUDA_VISIBLE_DEVICES if set, else every GPU NVML (or torch) sees.

    NVML is asked first because importing torch in the parent costs seconds and the workers import
    their own; the ids are what CUDA_VISIBLE_DEVICES accepts in the workers.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML library or no driver: fall back to torch if it is already loaded
        torch = sys.modules.get("torch")
        if torch is not None:
            return [str(i) for i in range(torch.cuda.device_count())]
        return []


PARENT_ENV = "ROBUSTPERF_DIE_WITH_PARENT"  # a worker started with this PID set stops when that process is gone
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM, poll_seconds: float = 1.0) -> None:
    """Make this worker process receive `signum` when `parent_pid` (the study) dies, so it never trains on
    as an orphan beside a rerun.

    SIGTERM is what a cluster sends: a training run checkpoints at its current step and stops as
    ``interrupted``, so the rerun resumes it. Linux: ``prctl(PR_SET_PDEATHSIG)`` (immediate); everywhere
    (and as a back-up, since the kernel ties that signal to the parent *thread*): a daemon thread that
    checks every `poll_seconds` whether this process has been re-parented.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the watchdog thread below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before we got here
        os.kill(os.getpid(), signum)
        return

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent_pid:
                log.warning("study process %d is gone: stopping this worker (PID %d)", parent_pid, os.getpid())
                os.kill(os.getpid(), signum)
                return

    threading.Thread(target=watch, daemon=True, name="robustperf-parent-watch").start()


def die_with_parent_from_env() -> None:
    """`die_with_parent` for a worker started by a study that set ``ROBUSTPERF_DIE_WITH_PARENT``."""
    value = os.environ.pop(PARENT_ENV, "")
    if value.isdigit():
        die_with_parent(int(value))


def _run_pinned(fn: RunFn, config: dict[str, Any], runs_dir: str, slot: int, gpu: str | None,
                threads: int, parent_pid: int | None = None) -> dict[str, Any]:
    """Worker entry point: pin the GPU and thread count before torch is first imported, then call fn."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu if gpu is not None else ""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["ROBUSTPERF_WORKER_SLOT"] = str(slot)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return fn(config, runs_dir)


class LocalSettings(ExecutorSettings):
    """The local pool's keys: how many runs at once, and the cores of each."""

    workers: int | None = Field(None, ge=1, description="parallel runs (default: GPUs, else CPU cores)")
    cpus_per_run: int | None = Field(None, ge=1, description="torch threads per run (default: cores // workers)")


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """A spawn process pool on this machine: one fresh process per run, one GPU (or CPU share) per worker.

    Each run gets its own single-use ``ProcessPoolExecutor(max_workers=1, mp_context=spawn,
    max_tasks_per_child=1)``, dispatched by ``workers`` threads that each own one slot (a GPU id, or a
    share of the CPU cores). A run that kills its process (OOM, segfault) breaks only its own pool, so
    the error is recorded for that run alone and its slot goes back to the queue.
    """

    name = "local"
    settings_class = LocalSettings
    settings: LocalSettings

    def __init__(self, spec: ExecutorSpec | None = None) -> None:
        super().__init__(spec)
        self._dispatch: cf.ThreadPoolExecutor | None = None
        self._slots: queue.Queue[int] = queue.Queue()
        self._gpus: list[str] = []
        self._threads = 1

    def _start(self) -> cf.ThreadPoolExecutor:
        if self._dispatch is not None:
            return self._dispatch
        gpus = visible_gpus() if self.settings.gpus_per_run > 0 else []
        cores = os.cpu_count() or 1
        workers = self.settings.workers or (len(gpus) if gpus else cores)
        if gpus and workers > len(gpus):
            raise ExecutorError(f"{workers} workers but {len(gpus)} GPUs: one GPU slot per worker; pass --workers "
                                f"{len(gpus)} or fewer (or set executor.gpus_per_run: 0 to train on CPU)")
        self._gpus = gpus[:workers]
        self._threads = self.settings.cpus_per_run or max(1, cores // workers)
        for slot in range(workers):
            self._slots.put(slot)
        self._dispatch = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="robustperf-slot")
        log.info("local pool: %d workers, GPUs %s, %d threads each", workers, self._gpus or "none", self._threads)
        return self._dispatch

    def _run_in_fresh_process(self, fn: RunFn, config: dict[str, Any], runs_dir: str) -> dict[str, Any]:
        slot = self._slots.get()
        try:
            gpu = self._gpus[slot] if self._gpus else None
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, max_tasks_per_child=1) as pool:
                return pool.submit(_run_pinned, fn, config, runs_dir, slot, gpu, self._threads,
                                   os.getpid()).result()
        finally:
            self._slots.put(slot)

    def submit(self, fn: RunFn, config: dict[str, Any], runs_dir: str) -> cf.Future:
        return self._start().submit(self._run_in_fresh_process, fn, config, runs_dir)

    def shutdown(self, wait: bool = True) -> None:
        if self._dispatch is not None:
            self._dispatch.shutdown(wait=wait, cancel_futures=not wait)
            self._dispatch = None
            self._slots = queue.Queue()


# ---------------------------------------------------------------- manifest + array index


class SchedulerSettings(ClusterShape):
    """What the sbatch/bsub/qsub array scripts ask of a batch scheduler (`robustperf.sweep.manifest`)."""

    warning_seconds: int = Field(120, ge=10, description="Slurm/LSF warn a task (USR1) this long before its time "
                                 "limit: it checkpoints at its current step and asks to be requeued")
    scheduler_args: tuple[str, ...] = Field((), description="extra lines for the #SBATCH/#BSUB/#PBS header")


class ManifestSettings(SchedulerSettings):
    """The manifest executor's keys: the scripts', and how it runs the indices here itself."""

    workers: int | None = Field(None, ge=1, description="indices run at once here (default: CPU cores)")
    submit: bool = Field(True, description="also run every index locally (False: only write scripts)")


class _ScriptWriter(Executor):
    """What the manifest and slurm executors share: writing the manifest and its array scripts."""

    def __init__(self, spec: ExecutorSpec | None = None, manifest_name: str = "study") -> None:
        super().__init__(spec)
        self.manifest_name = manifest_name
        self.manifest_path: Path | None = None
        self._threads: cf.ThreadPoolExecutor | None = None

    def write_scripts(self, fn: RunFn, configs: Sequence[dict[str, Any]], runs_dir: str) -> Path:
        """``runs_dir/manifests/<name>/``: manifest.jsonl and submit.sbatch, submit.bsub, submit.qsub."""
        from robustperf.names import check_name, path_under
        from robustperf.sweep.manifest import write_manifest, write_scheduler_scripts

        out_dir = path_under(runs_dir, "manifests", check_name(self.manifest_name, "manifest name"))
        self.manifest_path = write_manifest(out_dir / "manifest.jsonl", fn, configs, runs_dir)
        write_scheduler_scripts(self.manifest_path, self.spec, job_name=self.manifest_name)
        return self.manifest_path

    def submit(self, fn: RunFn, config: dict[str, Any], runs_dir: str) -> cf.Future:
        return self.submit_many(fn, [config], runs_dir)[0]

    def shutdown(self, wait: bool = True) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=wait)
            self._threads = None


@EXECUTORS.register("manifest")
class ManifestExecutor(_ScriptWriter):
    """Writes manifest.jsonl and array scripts; runs each index as its own `robustperf run-one` process.

    ``runs_dir/manifests/<name>/`` gets the manifest and ``submit.sbatch``, ``submit.bsub``,
    ``submit.qsub``. With ``submit=False`` nothing runs (``robustperf study --plan``); otherwise each
    index runs locally in a separate process, ``workers`` at a time, exactly as a scheduler would.
    """

    name = "manifest"
    settings_class = ManifestSettings
    settings: ManifestSettings

    def submit_many(self, fn: RunFn, configs: Sequence[dict[str, Any]], runs_dir: str) -> list[cf.Future]:
        manifest = self.write_scripts(fn, configs, runs_dir)
        if not self.settings.submit:
            return []
        self._threads = cf.ThreadPoolExecutor(max_workers=self.settings.workers or os.cpu_count() or 1)
        return [self._threads.submit(_run_index_subprocess, manifest, i) for i in range(len(configs))]


def _run_index_subprocess(manifest: Path, index: int) -> dict[str, Any]:
    """`python -m robustperf run-one --manifest M --index I` in a fresh process; its JSON summary."""
    import json

    cmd = [sys.executable, "-m", "robustperf", "run-one", "--manifest", str(manifest), "--index", str(index), "--json"]
    env = {**os.environ, PARENT_ENV: str(os.getpid())}  # the run-one process dies with this study
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:  # a summary (finished, failed, interrupted, locked) comes with its own exit code
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise RuntimeError(f"run-one --index {index} exited {proc.returncode}: {tail}")
    return json.loads(lines[-1])


@EXECUTORS.register("slurm")
class SlurmExecutor(_ScriptWriter):
    """The study's sbatch array submitted to the Slurm of this machine's PATH, waited for (``sbatch --wait``).

    Writes what ``--plan`` writes, submits ``submit.sbatch`` (a run of several ranks is one task of ``srun``
    ranks), and when the array has ended reads each run's outcome from its record (the tasks may have been
    requeued, resubmitted or run on other nodes meanwhile). `job_id` holds the array's id.
    """

    name = "slurm"
    settings_class = SchedulerSettings  # sbatch runs the tasks: no local workers, always submitted
    settings: SchedulerSettings

    def __init__(self, spec: ExecutorSpec | None = None, manifest_name: str = "study") -> None:
        super().__init__(spec, manifest_name)
        self.job_id: str | None = None

    def submit_many(self, fn: RunFn, configs: Sequence[dict[str, Any]], runs_dir: str) -> list[cf.Future]:
        import shutil

        if shutil.which("sbatch") is None:
            raise ExecutorError("the slurm executor needs Slurm's sbatch on the PATH; on another machine use "
                                "`robustperf study STUDY --plan` and submit its submit.sbatch there")
        script = self.write_scripts(fn, configs, runs_dir).parent / "submit.sbatch"
        proc = subprocess.Popen(["sbatch", "--parsable", "--wait", str(script)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self._threads = cf.ThreadPoolExecutor(max_workers=1)
        done = self._threads.submit(self._wait, proc)
        return [_after(done, functools.partial(_run_outcome, config, runs_dir)) for config in configs]

    def _wait(self, proc: subprocess.Popen) -> None:
        out, err = proc.communicate()
        self.job_id = (out or "").strip().split(";")[0] or None
        if self.job_id is None:  # not submitted; a nonzero exit after submission is a task's, which each run says
            raise RuntimeError(f"sbatch exited {proc.returncode}: {(err or out).strip()[-1000:]}")


def _after(done: cf.Future, then: Callable[[], dict[str, Any]]) -> cf.Future:
    """A future resolved with ``then()`` once `done` is (or with its exception)."""
    fut: cf.Future = cf.Future()
    fut.set_running_or_notify_cancel()

    def chain(d: cf.Future) -> None:
        exc = d.exception()
        if exc is not None:
            fut.set_exception(exc)
            return
        try:
            fut.set_result(then())
        except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
            fut.set_exception(err)

    done.add_done_callback(chain)
    return fut


def _run_outcome(config: dict[str, Any], runs_dir: str) -> dict[str, Any]:
    """A run's summary from its record, after its scheduler task ended."""
    from robustperf.store import RunDir

    run_id = run_id_of(config)
    record = RunDir.for_run(runs_dir, run_id).read_record()
    if record is None:
        return {"run_id": run_id, "status": "failed", "failure_reason": "the task left no record: see the array's logs"}
    status = record.status if record.status in ("finished", "failed", "interrupted") else "failed"
    reason = record.failure_reason or (None if status == "finished" else f"the task ended with the run {record.status}")
    return {"run_id": run_id, "status": status, "failure_reason": reason}


# ---------------------------------------------------------------- submitit


class SubmititSettings(ClusterShape):
    """submitit's keys: the cluster it submits to and what each job asks of it."""

    cluster: str | None = Field(None, description="submitit cluster: None (auto), slurm, local, debug")


@EXECUTORS.register("submitit")
class SubmititExecutor(Executor):
    """Slurm job arrays through submitit; ``cluster="local"`` runs the same jobs as local processes.

    Each job is a `Checkpointable` task: on preemption or timeout Slurm requeues it and, because
    `run_one` resumes from the run's last checkpoint, the requeued job continues where it stopped.
    """

    name = "submitit"
    settings_class = SubmititSettings
    settings: SubmititSettings

    def __init__(self, spec: ExecutorSpec | None = None) -> None:
        super().__init__(spec)
        self.jobs: list[Any] = []

    def _executor(self, runs_dir: str) -> Any:
        try:
            import submitit
        except ImportError as exc:
            raise ExecutorError("the submitit executor needs submitit: pip install 'robustperf[slurm]'") from exc
        folder = Path(runs_dir) / "submitit" / "%j"
        s = self.settings
        ex = submitit.AutoExecutor(folder=folder, cluster=s.cluster)
        # one task per rank (per GPU): submitit starts `fn` in each, `run_one` makes them one run (rank 0 owns it)
        params: dict[str, Any] = {"timeout_min": s.timeout_min, "tasks_per_node": s.ranks_per_node,
                                  "nodes": s.nodes_per_run, "cpus_per_task": s.cpus_per_rank}
        if ex.cluster == "slurm":
            params["slurm_array_parallelism"] = s.array_parallelism
            if s.mem_per_rank_gb:
                params["mem_gb"] = s.mem_per_rank_gb * s.ranks_per_node
            if s.partition:
                params["slurm_partition"] = s.partition
            if s.gpus_per_run:
                params["gpus_per_node"] = s.gpus_per_run
        elif ex.cluster == "local" and s.gpus_per_run and visible_gpus():
            params["gpus_per_node"] = s.gpus_per_run
        ex.update_parameters(**params)
        return ex

    def submit_many(self, fn: RunFn, configs: Sequence[dict[str, Any]], runs_dir: str) -> list[cf.Future]:
        ex = self._executor(runs_dir)
        task = RequeueableRun(fn)
        with ex.batch():  # one job array (Slurm --array with %array_parallelism)
            jobs = [ex.submit(task, c, runs_dir) for c in configs]
        self.jobs = jobs
        return [_job_future(j) for j in jobs]

    def submit(self, fn: RunFn, config: dict[str, Any], runs_dir: str) -> cf.Future:
        job = self._executor(runs_dir).submit(RequeueableRun(fn), config, runs_dir)
        self.jobs.append(job)
        return _job_future(job)


class RequeueableRun:
    """A picklable callable that submitit requeues on preemption (it resumes from the run's checkpoint)."""

    def __init__(self, fn: RunFn) -> None:
        self.fn = fn

    def __call__(self, config: dict[str, Any], runs_dir: str) -> dict[str, Any]:
        out = self.fn(config, runs_dir)
        if isinstance(out, dict) and out.get("status") == "interrupted":
            _hand_signal_to_submitit()
        return out

    def checkpoint(self, config: dict[str, Any], runs_dir: str) -> Any:
        """Called by submitit on SIGUSR2/timeout: resubmit the same call; training resumes on its own."""
        import submitit

        return submitit.helpers.DelayedSubmission(RequeueableRun(self.fn), config, runs_dir)


def _hand_signal_to_submitit() -> None:
    """After a run checkpointed on a stop signal: call submitit's own handler of its preemption signal, which
    pickles this call (`RequeueableRun.checkpoint`) and requeues the task (the run resumes from its checkpoint).

    Our stop handler stood in for submitit's while the run trained; outside a submitit job nothing happens.
    """
    if "SUBMITIT_EXECUTOR" not in os.environ and "SUBMITIT_FOLDER" not in os.environ:
        return
    try:
        from submitit.core.job_environment import JobEnvironment
    except ImportError:
        return
    sig = JobEnvironment._usr_sig()
    handler = signal.getsignal(sig)
    if callable(handler):
        log.warning("run interrupted: asking submitit to requeue this task")
        handler(sig, None)  # exits the process once the task is requeued


def _job_future(job: Any) -> cf.Future:
    """A concurrent Future completed by a daemon thread that waits on the submitit job."""
    fut: cf.Future = cf.Future()
    fut.set_running_or_notify_cancel()

    def wait() -> None:
        try:  # a run of several tasks (ranks) answers with rank 0's summary
            fut.set_result(job.results()[0] if job.num_tasks > 1 else job.result())
        except BaseException as exc:
            fut.set_exception(exc)

    threading.Thread(target=wait, daemon=True, name=f"submitit-{job.job_id}").start()
    return fut


# ---------------------------------------------------------------- ray


class RaySettings(RankShape):
    """Ray's keys: the CPUs it starts with (``workers`` runs' worth) and the shape of each run."""

    workers: int | None = Field(None, ge=1, description="runs at once when this process starts Ray")


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """One Ray task per run with ``gpus_per_run`` GPUs and ``cpus_per_run`` CPUs (``robustperf[ray]``)."""

    name = "ray"
    settings_class = RaySettings
    settings: RaySettings

    def __init__(self, spec: ExecutorSpec | None = None) -> None:
        super().__init__(spec)
        self._started = False

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise ExecutorError("the ray executor needs ray: pip install 'robustperf[ray]'") from exc
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.settings.workers:
                kwargs["num_cpus"] = self.settings.workers * (self.settings.cpus_per_run or 1)
            ray.init(**kwargs)
            self._started = True
        return ray

    def submit(self, fn: RunFn, config: dict[str, Any], runs_dir: str) -> cf.Future:
        ray = self._ray()
        gpus = self.settings.gpus_per_run if ray.cluster_resources().get("GPU", 0) else 0
        if self.settings.world_size > 1:
            return self._submit_ranks(ray, fn, config, runs_dir, has_gpus=bool(gpus))
        remote = ray.remote(num_cpus=self.settings.cpus_per_run or 1, num_gpus=gpus, max_calls=1)(_call)
        return remote.remote(fn, config, runs_dir).future()

    def _submit_ranks(self, ray: Any, fn: RunFn, config: dict[str, Any], runs_dir: str, has_gpus: bool) -> cf.Future:
        """One run as world_size tasks in a placement group (one bundle per rank, packed on as few nodes as
        fit); rank 0's node is the rendezvous. The future holds rank 0's summary."""
        from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        world, cpus = self.settings.world_size, self.settings.cpus_per_rank if has_gpus else (self.settings.cpus_per_run or 1)
        bundle = {"CPU": cpus, **({"GPU": 1} if has_gpus else {})}
        pg = placement_group([dict(bundle) for _ in range(world)], strategy="PACK")
        ray.get(pg.ready())
        node_of = placement_group_table(pg)["bundles_to_node_id"]
        addresses = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
        master = addresses.get(node_of[0], "127.0.0.1")
        port = str(20000 + (hash(run_id_of(config)) % 20000))
        refs = []
        for rank in range(world):
            env = {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": "0" if has_gpus else str(rank),
                   "MASTER_ADDR": master, "MASTER_PORT": port}
            strategy = PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=rank)
            remote = ray.remote(num_cpus=cpus, num_gpus=1 if has_gpus else 0, max_calls=1,
                                scheduling_strategy=strategy)(_call_rank)
            refs.append(remote.remote(fn, config, runs_dir, env))
        fut: cf.Future = cf.Future()
        fut.set_running_or_notify_cancel()

        def wait() -> None:
            try:
                fut.set_result(ray.get(refs)[0])
            except BaseException as exc:
                fut.set_exception(exc)
            finally:
                remove_placement_group(pg)

        threading.Thread(target=wait, daemon=True, name="ray-ranks").start()
        return fut

    def shutdown(self, wait: bool = True) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _call(fn: RunFn, config: dict[str, Any], runs_dir: str) -> dict[str, Any]:
    return fn(config, runs_dir)


def _call_rank(fn: RunFn, config: dict[str, Any], runs_dir: str, env: dict[str, str]) -> dict[str, Any]:
    """One rank of a multi-process Ray run: the launcher's variables, then the run (Ray's GPU share is the
    task's own CUDA_VISIBLE_DEVICES, so each rank sees its GPU as device 0)."""
    os.environ.update(env)
    return fn(config, runs_dir)
