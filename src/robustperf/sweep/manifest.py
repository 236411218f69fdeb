"""A manifest of runs plus array-job scripts for any scheduler (Slurm, LSF, PBS).

``manifest.jsonl`` has one self-contained line per run: its index, run id, runs directory, the
function to call (``module:qualname`` plus JSON keyword arguments) and the resolved RunConfig. An
array job runs ``robustperf run-one --manifest M`` and each task finds its line from the scheduler's
array variable:

=========  ========================  =====================================
scheduler  variable                  indices in our scripts
=========  ========================  =====================================
Slurm      ``SLURM_ARRAY_TASK_ID``   ``--array=0-(N-1)`` (0-based)
LSF        ``LSB_JOBINDEX``          ``-J name[1-N]`` (1-based; we subtract 1)
PBS Pro    ``PBS_ARRAY_INDEX``       ``-J 0-(N-1)`` (0-based)
Torque     ``PBS_ARRAYID``           ``-t 0-(N-1)`` (0-based)
=========  ========================  =====================================

A manifest is a data file in a shared runs directory, so `run-one` trusts none of it: the function must be
a registered entry point; the file must match the digest written beside it when it was planned
(``manifest.jsonl.sha256``: an edited manifest is refused until re-planned); every entry must name the runs
directory that holds the manifest (at most two levels up); its keyword arguments must be ones the function
takes; and its config is validated like a study's (`check_entry`; data files are checked by the run
itself, which records a failure) before anything runs. The digest catches edits and stale copies; it is
not a signature (whoever can rewrite the manifest can rewrite its digest), so the checks after it do not
rely on it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import logging
import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robustperf.store import read_jsonl, write_json_atomic
from robustperf.store.io import dumps, write_bytes_atomic
from robustperf.sweep import launch
from robustperf.sweep.study import ExecutorSpec, run_id_of

log = logging.getLogger(__name__)

# (variable, offset to subtract): LSF job arrays start at 1, the others at what our scripts ask for (0).
ARRAY_VARIABLES: tuple[tuple[str, int], ...] = (
    ("SLURM_ARRAY_TASK_ID", 0),
    ("LSB_JOBINDEX", 1),
    ("PBS_ARRAY_INDEX", 0),
    ("PBS_ARRAYID", 0),
)


# The largest array each scheduler takes by default: Slurm's MaxArraySize (1001: indices 0-1000), LSF's
# MAX_JOB_ARRAY_SIZE (1000), PBS Pro's max_array_size (10000). A larger plan is split into several scripts.
ARRAY_LIMITS: dict[str, int] = {"sbatch": 1001, "bsub": 1000, "qsub": 10000}
OFFSET_ENV = "ROBUSTPERF_ARRAY_OFFSET"  # added to the scheduler's array index by the scripts of later parts


class ManifestError(ValueError):
    """A manifest or index that cannot be used; the message says what to pass instead."""


# `run-one` calls only these functions (plus the ones a deployment adds: `allowed_entry_points`), never an
# arbitrary import path written into a manifest file.
ENTRY_POINTS: frozenset[str] = frozenset({"robustperf.sweep.run:run_one", "robustperf.llm.study:run_llm_one"})
ENTRY_POINTS_ENV = "ROBUSTPERF_RUN_ENTRY_POINTS"  # comma-separated module:qualname, set by whoever runs run-one
ENTRY_POINTS_GROUP = "robustperf.run_entry_points"  # installed plug-ins: [project.entry-points."robustperf.run_entry_points"]


def allowed_entry_points() -> frozenset[str]:
    """What `run-one` may call: the project's own entry point, installed plug-ins, and ``$ROBUSTPERF_RUN_ENTRY_POINTS``.

    The environment of the process that runs ``run-one`` is set by the person or scheduler starting it;
    the manifest is a data file anyone with write access to the runs directory can edit, so it only picks
    from this list.
    """
    allowed = set(ENTRY_POINTS)
    try:
        from importlib.metadata import entry_points

        allowed.update(ep.value.replace(" ", "") for ep in entry_points(group=ENTRY_POINTS_GROUP))
    except Exception:  # broken metadata of some installed package: the built-in list still works
        pass
    allowed.update(v.strip() for v in os.environ.get(ENTRY_POINTS_ENV, "").split(",") if v.strip())
    return frozenset(allowed)


def _check_entry_point(reference: str) -> None:
    if reference not in allowed_entry_points():
        raise ManifestError(f"manifest function {reference!r} is not a registered run entry point (allowed: "
                            f"{', '.join(sorted(allowed_entry_points()))}); re-create the manifest with "
                            f"`robustperf study STUDY --plan`, or register a plug-in under the "
                            f"{ENTRY_POINTS_GROUP!r} entry-point group")


def fn_reference(fn: Callable[..., Any]) -> dict[str, Any]:
    """``{"fn": "module:qualname", "fn_kwargs": {...}}`` for a module-level function or a partial of one.

    Raises:
        ManifestError: the function is not importable by name or not a registered run entry point.
    """
    kwargs: dict[str, Any] = {}
    if isinstance(fn, functools.partial):
        if fn.args:
            raise ManifestError("manifest functions may bind keyword arguments only (functools.partial(f, k=v))")
        kwargs = dict(fn.keywords)
        fn = fn.func
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<" in qualname or module == "__main__":
        raise ManifestError(f"{fn!r} is not importable by name; use a module-level function")
    json.dumps(kwargs)  # the keyword arguments must survive JSON (raises TypeError otherwise)
    _check_entry_point(f"{module}:{qualname}")
    return {"fn": f"{module}:{qualname}", "fn_kwargs": kwargs}


def resolve_fn(reference: str) -> Callable[..., Any]:
    """Import ``module:qualname`` if it is a registered run entry point (`allowed_entry_points`)."""
    if not isinstance(reference, str):
        raise ManifestError(f"manifest function {reference!r} is not a 'module:qualname' string")
    _check_entry_point(reference)
    module_name, _, qualname = reference.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def write_manifest(path: str | Path, fn: Callable[..., Any], configs: Sequence[dict[str, Any]],
                   runs_dir: str | Path) -> Path:
    """Write one line per config (atomically) and return the manifest's path."""
    ref = fn_reference(fn)
    lines = []
    for i, config in enumerate(configs):
        run_id = run_id_of(config)
        lines.append(dumps({"index": i, "run_id": run_id, "runs_dir": str(Path(runs_dir).resolve()), **ref,
                            "config": config}))
    target = Path(path)
    data = ("\n".join(lines) + "\n").encode()
    write_bytes_atomic(target, data)
    write_bytes_atomic(digest_path(target), (hashlib.sha256(data).hexdigest() + "\n").encode())
    return target


def digest_path(manifest: str | Path) -> Path:
    """Where the SHA-256 of a manifest's bytes is kept: ``<manifest>.sha256`` beside it."""
    manifest = Path(manifest)
    return manifest.with_name(manifest.name + ".sha256")


def check_digest(manifest: str | Path) -> None:
    """Refuse a manifest whose bytes no longer match the digest written when it was planned.

    Raises:
        ManifestError: the digest file is missing or differs (the manifest was edited or is half-copied).
    """
    manifest = Path(manifest)
    try:
        expected = digest_path(manifest).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        expected = ""
    actual = hashlib.sha256(manifest.read_bytes()).hexdigest()
    if actual != expected:
        what = "has no digest beside it" if not expected else "does not match the digest written when it was planned"
        raise ManifestError(f"manifest {str(manifest)!r} {what} ({digest_path(manifest).name}): it was edited or "
                            f"copied in part; re-plan it with `robustperf study STUDY --plan`")


def check_entry(manifest: str | Path, entry: dict[str, Any], fn: Callable[..., Any]) -> None:
    """What `run-one` checks of one entry before running it: its runs directory is the one holding the
    manifest, its keyword arguments are ones `fn` takes, and a training entry's config passes the checks a
    study's configs pass (the pydantic model, the model and method names).

    Raises:
        ManifestError: the first failed check, naming the manifest line and the fix.
    """
    where = f"manifest {str(manifest)!r} entry {entry.get('index')}"
    runs_dir = entry.get("runs_dir")
    home = Path(manifest).resolve().parent
    if not isinstance(runs_dir, str) or not runs_dir:
        raise ManifestError(f"{where}: runs_dir {runs_dir!r} is not a path; re-plan the study")
    # a study writes runs_dir/manifests/<name>/manifest.jsonl; the API may write it up to two levels down
    if Path(runs_dir).resolve() not in (home, home.parent, home.parent.parent):
        raise ManifestError(f"{where}: runs_dir {runs_dir!r} is not the runs directory holding the manifest "
                            f"({home.parent.parent}); re-plan the study with --runs-dir set to where its runs go")
    kwargs = entry.get("fn_kwargs", {})
    if not isinstance(kwargs, dict):
        raise ManifestError(f"{where}: fn_kwargs must be a mapping, not {type(kwargs).__name__}; re-plan the study")
    params = inspect.signature(fn).parameters
    unknown = sorted(k for k in kwargs if k not in params or k in ("config", "payload", "runs_dir"))
    if unknown:
        raise ManifestError(f"{where}: fn_kwargs {unknown} are not keyword arguments of {entry.get('fn')} "
                            f"(it takes {', '.join(p for p in params if p not in ('config', 'payload', 'runs_dir'))}); "
                            f"re-plan the study")
    if entry.get("fn") == "robustperf.sweep.run:run_one":
        _check_run_config(where, entry.get("config"))


def _check_run_config(where: str, config: Any) -> None:
    from robustperf.config import ConfigError, config_from_dict
    from robustperf.models import MODELS
    from robustperf.registry import RegistryError
    from robustperf.training.methods import METHODS

    if not isinstance(config, dict):
        raise ManifestError(f"{where}: config must be a mapping, not {type(config).__name__}; re-plan the study")
    try:
        cfg = config_from_dict(config)
        MODELS.get(cfg.model.name)
        METHODS.get(cfg.method.name)
    except (ConfigError, RegistryError) as err:
        raise ManifestError(f"{where}: {err}") from None


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Every entry of a manifest, checked to be complete and in index order."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"manifest {str(p)!r} does not exist (write one with `robustperf study STUDY --plan`)")
    entries = read_jsonl(p)
    for i, entry in enumerate(entries):
        if entry.get("index") != i or "config" not in entry or "fn" not in entry:
            raise ManifestError(f"manifest {str(p)!r} line {i + 1} is damaged; re-create it with --plan")
    return entries


def array_index_from_env(environ: dict[str, str] | None = None) -> int:
    """The 0-based manifest index from the scheduler's array variable."""
    env = os.environ if environ is None else environ
    try:  # set by the scripts of the second and later parts of a plan split at the scheduler's array limit
        first = int(env.get(OFFSET_ENV) or 0)
    except ValueError:
        raise ManifestError(f"{OFFSET_ENV}={env.get(OFFSET_ENV)!r} is not an integer") from None
    for var, offset in ARRAY_VARIABLES:
        value = env.get(var)
        if value not in (None, ""):
            try:
                return int(value) - offset + first
            except ValueError:
                raise ManifestError(f"{var}={value!r} is not an integer array index") from None
    names = ", ".join(v for v, _ in ARRAY_VARIABLES)
    raise ManifestError(f"no --index given and none of {names} is set; pass --index I")


def run_manifest_index(path: str | Path, index: int | None = None) -> dict[str, Any]:
    """Run entry `index` of a manifest (or the scheduler's array index) and return its summary."""
    entries = read_manifest(path)
    i = array_index_from_env() if index is None else index
    if not 0 <= i < len(entries):
        raise ManifestError(f"index {i} is outside the manifest's 0..{len(entries) - 1}")
    entry = entries[i]
    fn = resolve_fn(entry["fn"])
    check_digest(path)
    check_entry(path, entry, fn)
    return fn(entry["config"], entry["runs_dir"], **entry.get("fn_kwargs", {}))


def _q(value: object) -> str:
    """One value of a directive line, shell-quoted; a line break or NUL (a new script line) is refused."""
    text = str(value)
    if any(c in text for c in "\n\r\x00"):
        raise ManifestError(f"scheduler value {text!r} holds a line break or NUL: give it on one line")
    return shlex.quote(text)


def _args(arg: str) -> str:
    """An extra directive (``--account=abc``, ``-nnodes 1``): each of its words quoted."""
    _q(arg)
    try:
        words = shlex.split(arg)
    except ValueError as exc:
        raise ManifestError(f"scheduler_args entry {arg!r} cannot be split into words ({exc}): fix its quotes") from None
    return " ".join(shlex.quote(w) for w in words)


def _offset(offset: int) -> list[str]:
    """The line that shifts this part's array indices onto its slice of the manifest (none for the first)."""
    return [f"export {OFFSET_ENV}={int(offset)}"] if offset else []


def _hours(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def sbatch_script(manifest: Path, n: int, spec: ExecutorSpec, job_name: str, offset: int = 0) -> str:
    """A Slurm array script: ``sbatch submit.sbatch``; ``--requeue`` lets preempted tasks resume, and
    ``--signal`` makes a task that reaches its time limit checkpoint first (resubmit to go on).
    Every value is shell-quoted (`_q`), so a name or path cannot add a line or a directive."""
    logs = manifest.parent / "logs"
    lines = ["#!/bin/bash", f"#SBATCH --job-name={_q(job_name)}",
             f"#SBATCH --array=0-{n - 1}%{spec.array_parallelism}",
             f"#SBATCH --output={_q(f'{logs}/%x_%A_%a.out')}", f"#SBATCH --time={_hours(spec.timeout_min)}",
             "#SBATCH --requeue",
             # nodes, ranks, cores and memory per rank, and USR1 two minutes before the time limit (the run
             # checkpoints at its current step and asks to be requeued): `launch.slurm_directives`
             *launch.slurm_directives(spec)]
    if spec.partition:
        lines.append(f"#SBATCH --partition={_q(spec.partition)}")
    lines += [f"#SBATCH {_args(a)}" for a in spec.scheduler_args]
    return "\n".join([*lines, "", *_offset(offset), *launch.slurm_launch(manifest, spec), ""])


def bsub_script(manifest: Path, n: int, spec: ExecutorSpec, job_name: str, offset: int = 0) -> str:
    """An LSF array script: ``bsub < submit.bsub`` (LLNL-style ``-nnodes`` can go in scheduler_args)."""
    logs = manifest.parent / "logs"
    lines = ["#!/bin/bash", f"#BSUB -J {_q(f'{job_name}[1-{n}]%{spec.array_parallelism}')}",
             f"#BSUB -o {_q(f'{logs}/%J_%I.out')}", f"#BSUB -W {spec.timeout_min}",
             f"#BSUB -n {spec.world_size * spec.cpus_per_rank}",
             f'#BSUB -R "span[ptile={spec.ranks_per_node * spec.cpus_per_rank}]'
             + (f' rusage[mem={spec.mem_per_rank_gb * 1024 // spec.cpus_per_rank}]"' if spec.mem_per_rank_gb else '"'),
             "#BSUB -wa USR1", f"#BSUB -wt {max(1, spec.warning_seconds // 60)}"]  # USR1 before the limit: checkpoint
    if spec.gpus_per_run:
        lines.append(f'#BSUB -gpu "num={spec.gpus_per_run}"')
    if spec.partition:
        lines.append(f"#BSUB -q {_q(spec.partition)}")
    lines += [f"#BSUB {_args(a)}" for a in spec.scheduler_args]
    index = f"$((LSB_JOBINDEX - 1 + {int(offset)}))" if offset else "$((LSB_JOBINDEX - 1))"  # this part's slice
    body = launch.torchrun_launch(manifest, spec, index,
                                  "echo $LSB_HOSTS | tr ' ' '\\n' | uniq", 'blaunch -z "$HOSTS"')
    return "\n".join([*lines, "", *body, ""])


def qsub_script(manifest: Path, n: int, spec: ExecutorSpec, job_name: str, offset: int = 0) -> str:
    """A PBS Pro array script: ``qsub submit.qsub``."""
    logs = manifest.parent / "logs"
    per_node = spec.ranks_per_node
    select = (f"select={spec.nodes_per_run}:ncpus={per_node * spec.cpus_per_rank}"
              + (f":mem={per_node * spec.mem_per_rank_gb}gb" if spec.mem_per_rank_gb else "")
              + (f":ngpus={spec.gpus_per_run}" if spec.gpus_per_run else ""))
    lines = ["#!/bin/bash", f"#PBS -N {_q(job_name)}", f"#PBS -J 0-{n - 1}", f"#PBS -l {select}",
             f"#PBS -l walltime={_hours(spec.timeout_min)}", f"#PBS -o {_q(f'{logs}/')}", "#PBS -j oe"]
    if spec.partition:
        lines.append(f"#PBS -q {_q(spec.partition)}")
    lines += [f"#PBS {_args(a)}" for a in spec.scheduler_args]
    index = "${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-0}}"
    if offset:  # this part's slice of the manifest
        index = f"$(({index} + {int(offset)}))"
    body = launch.torchrun_launch(manifest, spec, index, "sort -u $PBS_NODEFILE", "pbsdsh -u")
    return "\n".join([*lines, "", 'cd "${PBS_O_WORKDIR:-.}"', *body, ""])


def write_scheduler_scripts(manifest: str | Path, spec: ExecutorSpec, job_name: str) -> dict[str, Path]:
    """Write ``submit.sbatch``, ``submit.bsub`` and ``submit.qsub`` next to the manifest.

    A plan larger than a scheduler's default array limit (`ARRAY_LIMITS`) is split: ``submit.sbatch``
    covers the first 1001 entries, ``submit-2.sbatch`` the next (its array index shifted by
    ``$ROBUSTPERF_ARRAY_OFFSET``), and so on; a warning says so. ``plan.json`` lists every part.
    Returns the first script of each kind.
    """
    manifest = Path(manifest).resolve()
    n = len(read_manifest(manifest))
    if n == 0:
        raise ManifestError("the manifest is empty: the study expands to no runs")
    (manifest.parent / "logs").mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    parts: dict[str, list[str]] = {}
    for kind, build in (("sbatch", sbatch_script), ("bsub", bsub_script), ("qsub", qsub_script)):
        limit = ARRAY_LIMITS[kind]
        parts[kind] = []
        for part, offset in enumerate(range(0, n, limit), start=1):
            path = manifest.parent / (f"submit.{kind}" if part == 1 else f"submit-{part}.{kind}")
            name = job_name if part == 1 else f"{job_name}-{part}"
            write_bytes_atomic(path, build(manifest, min(limit, n - offset), spec, name, offset).encode())
            path.chmod(0o755)
            parts[kind].append(str(path))
        out[kind] = Path(parts[kind][0])
        if len(parts[kind]) > 1:
            log.warning("%d runs exceed the default array limit of %s (%d tasks): wrote %d scripts (%s); submit "
                        "each, or raise the limit on your cluster and edit the array range of the first", n,
                        _SCHEDULERS[kind], limit, len(parts[kind]), ", ".join(Path(p).name for p in parts[kind]))
    write_json_atomic(manifest.parent / "plan.json", {"n_runs": n, "manifest": str(manifest),
                                                       "scripts": {k: str(v) for k, v in out.items()},
                                                       "parts": parts})
    return out


_SCHEDULERS = {"sbatch": "Slurm (MaxArraySize)", "bsub": "LSF (MAX_JOB_ARRAY_SIZE)", "qsub": "PBS Pro (max_array_size)"}
