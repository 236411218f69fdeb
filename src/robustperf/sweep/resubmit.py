"""`robustperf study STUDY --resubmit`: submit again, as one array, the tasks of a planned study left unfinished.

An array that ran out of time (or whose tasks were cancelled or preempted without requeue) leaves some
runs unfinished; each of them resumes from its step checkpoint when its task runs again. This finds them
from the run directories (a run is done when it is finished and its study evaluation is recorded) and
submits ``sbatch --array=<their indices>%<throttle> --time=<the study's timeout_min> submit.sbatch`` on the
study's existing manifest (so a study given more time in its file gets it), and nothing finished is trained twice. Without ``sbatch`` on the PATH the command to run is returned instead.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from robustperf.names import check_name, path_under
from robustperf.store import RunDir
from robustperf.sweep.manifest import ManifestError, read_manifest
from robustperf.sweep.run import needs_work
from robustperf.sweep.study import StudyConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resubmission:
    """What `resubmit` found and did."""

    manifest: Path
    unfinished: tuple[int, ...]
    array: str  # the --array value ("" when nothing is left)
    command: tuple[str, ...]  # the submission command ("" when nothing is left)
    job_id: str | None  # Slurm's answer when it was submitted


def array_ranges(indices: list[int] | tuple[int, ...]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"`` (what ``--array`` accepts)."""
    parts: list[str] = []
    for i in sorted(set(indices)):
        if parts and "-" not in parts[-1].split(",")[-1] and int(parts[-1]) == i - 1:
            parts[-1] = f"{parts[-1]}-{i}"
        elif parts and "-" in parts[-1] and int(parts[-1].split("-")[1]) == i - 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)


def unfinished_indices(manifest: Path, study: StudyConfig) -> list[int]:
    """Manifest indices whose run is not finished, or whose study evaluation is not recorded yet."""
    out = []
    for entry in read_manifest(manifest):
        rd = RunDir.for_run(entry["runs_dir"], str(entry["run_id"]))
        finished, needs_eval = needs_work(rd, study.evaluate)
        if not finished or needs_eval:
            out.append(int(entry["index"]))
    return out


def resubmit(study: StudyConfig, runs_dir: str | Path, submit: bool = True) -> Resubmission:
    """Submit the unfinished tasks of the study's planned array again (see the module doc).

    Raises:
        ManifestError: the study was never planned in this runs directory (no manifest).
    """
    name = check_name(study.name, "study name")
    manifest = path_under(Path(runs_dir).resolve(), "manifests", name, "manifest.jsonl")
    if not manifest.is_file():
        raise ManifestError(f"study {name!r} has no manifest in {runs_dir}: plan it first with "
                            f"`robustperf study STUDY --plan --runs-dir {runs_dir}`, submit it, then --resubmit")
    todo = unfinished_indices(manifest, study)
    if not todo:
        return Resubmission(manifest, (), "", (), None)
    array = f"{array_ranges(todo)}%{study.executor.array_parallelism}"
    minutes = study.executor.timeout_min  # the study's time now: resubmitting after a time-out may give more
    command = ("sbatch", "--parsable", f"--array={array}", f"--time={minutes // 60:02d}:{minutes % 60:02d}:00",
               str(manifest.parent / "submit.sbatch"))
    job_id = None
    if submit and shutil.which("sbatch"):
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise ManifestError(f"sbatch refused the resubmission ({proc.stderr.strip()[:300]}); run it by hand: "
                                f"{' '.join(command)}")
        job_id = proc.stdout.strip().split(";")[0]
        log.info("resubmitted %d unfinished task(s) of %s as job %s", len(todo), name, job_id)
    return Resubmission(manifest, tuple(todo), array, command, job_id)


__all__ = ["Resubmission", "array_ranges", "resubmit", "unfinished_indices"]
