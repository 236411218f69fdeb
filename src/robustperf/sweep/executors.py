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

from robustperf.registry import Registry
from robustperf.sweep.study import ExecutorSpec, run_id_of

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


class Executor:
    """Base class: subclasses implement `submit` (and `shutdown` when they hold resources)."""

    name: ClassVar[str] = ""

    def __init__(self, spec: ExecutorSpec | None = None) -> None:
        self.spec = spec or ExecutorSpec(name=self.name)

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
    """Build an executor by name; ``changes`` override fields of `spec` (e.g. ``workers=2``)."""
    cls = EXECUTORS.get(name)
    base = spec or ExecutorSpec(name=name)
    return cls(base.model_copy(update={"name": name, **changes}))


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


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """A spawn process pool on this machine: one fresh process per run, one GPU (or CPU share) per worker.

    Each run gets its own single-use ``ProcessPoolExecutor(max_workers=1, mp_context=spawn,
    max_tasks_per_child=1)``, dispatched by ``workers`` threads that each own one slot (a GPU id, or a
    share of the CPU cores). A run that kills its process (OOM, segfault) breaks only its own pool, so
    the error is recorded for that run alone and its slot goes back to the queue.
    """

    name = "local"

    def __init__(self, spec: ExecutorSpec | None = None) -> None:
        super().__init__(spec)
        self._dispatch: cf.ThreadPoolExecutor | None = None
        self._slots: queue.Queue[int] = queue.Queue()
        self._gpus: list[str] = []
        self._threads = 1

    def _start(self) -> cf.ThreadPoolExecutor:
        if self._dispatch is not None:
            return self._dispatch
        gpus = visible_gpus() if self.spec.gpus_per_run > 0 else []
        cores = os.cpu_count() or 1
        workers = self.spec.workers or (len(gpus) if gpus else cores)
        if gpus and workers > len(gpus):
            raise ExecutorError(f"{workers} workers but {len(gpus)} GPUs: one GPU slot per worker; pass --workers "
                                f"{len(gpus)} or fewer (or set executor.gpus_per_run: 0 to train on CPU)")
        self._gpus = gpus[:workers]
        self._threads = self.spec.cpus_per_run or max(1, cores // workers)
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


@EXECUTORS.register("manifest")
class ManifestExecutor(Executor):
    """Writes manifest.jsonl and array scripts; runs each index as its own `robustperf run-one` process.

    ``runs_dir/manifests/<name>/`` gets the manifest and ``submit.sbatch``, ``submit.bsub``,
    ``submit.qsub``. With ``spec.submit=False`` nothing runs (``robustperf study --plan``); otherwise each
    index runs locally in a separate process, ``workers`` at a time, exactly as a scheduler would.
    """

    name = "manifest"

    def __init__(self, spec: ExecutorSpec | None = None, manifest_name: str = "study") -> None:
        super().__init__(spec)
        self.manifest_name = manifest_name
        self.manifest_path: Path | None = None
        self._threads: cf.ThreadPoolExecutor | None = None

    def submit_many(self, fn: RunFn, configs: Sequence[dict[str, Any]], runs_dir: str) -> list[cf.Future]:
        from robustperf.names import check_name, path_under
        from robustperf.sweep.manifest import write_manifest, write_scheduler_scripts

        out_dir = path_under(runs_dir, "manifests", check_name(self.manifest_name, "manifest name"))
        self.manifest_path = write_manifest(out_dir / "manifest.jsonl", fn, configs, runs_dir)
        write_scheduler_scripts(self.manifest_path, self.spec, job_name=self.manifest_name)
        if not self.spec.submit or self.name != "manifest":
            return []
        workers = self.spec.workers or os.cpu_count() or 1
        self._threads = cf.ThreadPoolExecutor(max_workers=workers)
        return [self._threads.submit(_run_index_subprocess, self.manifest_path, i) for i in range(len(configs))]

    def submit(self, fn: RunFn, config: dict[str, Any], runs_dir: str) -> cf.Future:
        return self.submit_many(fn, [config], runs_dir)[0]

    def shutdown(self, wait: bool = True) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=wait)
            self._threads = None


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
class SlurmExecutor(ManifestExecutor):
    """The study's sbatch array submitted to the Slurm of this machine's PATH, waited for (``sbatch --wait``).

    Writes what ``--plan`` writes, submits ``submit.sbatch`` (a run of several ranks is one task of ``srun``
    ranks), and when the array has ended reads each run's outcome from its record (the tasks may have been
    requeued, resubmitted or run on other nodes meanwhile). `job_id` holds the array's id.
    """

    name = "slurm"

    def __init__(self, spec: ExecutorSpec | None = None, manifest_name: str = "study") -> None:
        super().__init__(spec, manifest_name)
        self.job_id: str | None = None

    def submit_many(self, fn: RunFn, configs: Sequence[dict[str, Any]], runs_dir: str) -> list[cf.Future]:
        import shutil

        if shutil.which("sbatch") is None:
            raise ExecutorError("the slurm executor needs Slurm's sbatch on the PATH; on another machine use "
                                "`robustperf study STUDY --plan` and submit its submit.sbatch there")
        super().submit_many(fn, configs, runs_dir)
        assert self.manifest_path is not None, "ManifestExecutor.submit_many writes the manifest"
        script = self.manifest_path.parent / "submit.sbatch"
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


@EXECUTORS.register("submitit")
class SubmititExecutor(Executor):
    """Slurm job arrays through submitit; ``cluster="local"`` runs the same jobs as local processes.

    Each job is a `Checkpointable` task: on preemption or timeout Slurm requeues it and, because
    `run_one` resumes from the run's last checkpoint, the requeued job continues where it stopped.
    """

    name = "submitit"

    def __init__(self, spec: ExecutorSpec | None = None) -> None:
        super().__init__(spec)
        self.jobs: list[Any] = []

    def _executor(self, runs_dir: str) -> Any:
        try:
            import submitit
        except ImportError as exc:
            raise ExecutorError("the submitit executor needs submitit: pip install 'robustperf[slurm]'") from exc
        folder = Path(runs_dir) / "submitit" / "%j"
        ex = submitit.AutoExecutor(folder=folder, cluster=self.spec.cluster)
        # one task per rank (per GPU): submitit starts `fn` in each, `run_one` makes them one run (rank 0 owns it)
        params: dict[str, Any] = {"timeout_min": self.spec.timeout_min, "tasks_per_node": self.spec.ranks_per_node,
                                  "nodes": self.spec.nodes_per_run, "cpus_per_task": self.spec.cpus_per_rank}
        if ex.cluster == "slurm":
            params["slurm_array_parallelism"] = self.spec.array_parallelism
            if self.spec.mem_per_rank_gb:
                params["mem_gb"] = self.spec.mem_per_rank_gb * self.spec.ranks_per_node
            if self.spec.partition:
                params["slurm_partition"] = self.spec.partition
            if self.spec.gpus_per_run:
                params["gpus_per_node"] = self.spec.gpus_per_run
        elif ex.cluster == "local" and self.spec.gpus_per_run and visible_gpus():
            params["gpus_per_node"] = self.spec.gpus_per_run
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


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """One Ray task per run with ``gpus_per_run`` GPUs and ``cpus_per_run`` CPUs (``robustperf[ray]``)."""

    name = "ray"

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
            if self.spec.workers:
                kwargs["num_cpus"] = self.spec.workers * (self.spec.cpus_per_run or 1)
            ray.init(**kwargs)
            self._started = True
        return ray

    def submit(self, fn: RunFn, config: dict[str, Any], runs_dir: str) -> cf.Future:
        ray = self._ray()
        gpus = self.spec.gpus_per_run if ray.cluster_resources().get("GPU", 0) else 0
        if self.spec.world_size > 1:
            return self._submit_ranks(ray, fn, config, runs_dir, has_gpus=bool(gpus))
        remote = ray.remote(num_cpus=self.spec.cpus_per_run or 1, num_gpus=gpus, max_calls=1)(_call)
        return remote.remote(fn, config, runs_dir).future()

    def _submit_ranks(self, ray: Any, fn: RunFn, config: dict[str, Any], runs_dir: str, has_gpus: bool) -> cf.Future:
        """One run as world_size tasks in a placement group (one bundle per rank, packed on as few nodes as
        fit); rank 0's node is the rendezvous. The future holds rank 0's summary."""
        from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        world, cpus = self.spec.world_size, self.spec.cpus_per_rank if has_gpus else (self.spec.cpus_per_run or 1)
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
