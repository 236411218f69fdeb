"""Weights & Biases: export stored runs or log live, offline by default (`pip install robustperf[wandb]`).

A run is one W&B run whose id is the robustperf run id: its config is the flattened resolved config, its
history the metrics by step, its summary the final/best/cost numbers. Offline (the default, no account
needed) a run lives in ``<dir>/wandb/offline-run-<time>-<id>/`` until ``wandb sync`` uploads it. An export
leaves a run whose ``robustperf_fingerprint`` file matches alone, and otherwise deletes the run's offline
folders before writing it again, so the folder never holds a run twice.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

from robustperf.tracking.source import TAG_FINGERPRINT, RunExport

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "robustperf_fingerprint"


def wandb_id(run_id: str) -> str:
    """A W&B run id for a robustperf run id (W&B allows letters, digits, - and _)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", run_id)[:128]


def _module() -> Any:
    try:
        import wandb
    except ImportError:
        raise ImportError("the W&B tracker needs wandb: pip install 'robustperf[wandb]'") from None
    return wandb


def start(project: str, run_id: str, directory: Path, mode: str, params: dict[str, Any],
          entity: str | None = None, tags: dict[str, str] | None = None) -> Any:  # -> wandb Run
    """`wandb.init` for one robustperf run, quiet, without console capture, code saving or system stats."""
    wandb = _module()
    directory.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(silent=True, console="off", save_code=False, x_disable_stats=True,
                              x_disable_meta=True)
    return wandb.init(project=project, entity=entity, id=wandb_id(run_id), name=run_id, dir=str(directory),
                      mode=mode, config={**params, **(tags or {})}, resume="allow", reinit="finish_previous",
                      settings=settings)


def offline_dirs(directory: Path, run_id: str) -> list[Path]:
    """The offline run folders of this run under `directory`."""
    return sorted((directory / "wandb").glob(f"offline-run-*-{wandb_id(run_id)}"))


def _write_run(run: RunExport, directory: Path, project: str, mode: str) -> None:
    wb = start(project, run.run_id, directory, mode, run.params, tags={TAG_FINGERPRINT: run.fingerprint})
    try:
        by_step: dict[int, dict[str, float]] = {}
        for key, points in run.series.items():
            for step, value in points:
                by_step.setdefault(step, {})[key] = value
        for step in sorted(by_step):
            wb.log(by_step[step], step=step)
        wb.summary.update(run.summary)
    finally:
        wb.finish(exit_code=0 if run.status == "finished" else 1)


def export_wandb(runs: list[RunExport], directory: str | Path, project: str = "robustperf",
                 mode: str = "offline", report: str | Path | None = None) -> dict[str, str]:
    """Export runs to W&B; returns {run_id: "exported" | "replaced" | "unchanged"}.

    Offline, runs go to ``<directory>/wandb/``; online (``mode="online"``, needs a login) they are uploaded
    and the fingerprint check still reads the local folders. A `report` folder becomes a W&B artifact of
    type "report" logged by one run ``report-<folder name>`` (rewritten on every export).
    """
    base = Path(directory)
    outcome: dict[str, str] = {}
    for run in runs:
        found = offline_dirs(base, run.run_id)
        marks = [d / FINGERPRINT_FILE for d in found]
        if len(found) == 1 and marks[0].is_file() and marks[0].read_text() == run.fingerprint:
            outcome[run.run_id] = "unchanged"
            continue
        for old in found:
            shutil.rmtree(old)
        _write_run(run, base, project, mode)
        for new in offline_dirs(base, run.run_id):
            (new / FINGERPRINT_FILE).write_text(run.fingerprint)
        outcome[run.run_id] = "replaced" if found else "exported"
    if report is not None:
        _export_report(Path(report), base, project, mode)
    log.info("W&B %s (%s): %s", base, mode, outcome)
    return outcome


def _export_report(report: Path, base: Path, project: str, mode: str) -> None:
    wandb = _module()
    run_id = f"report-{report.name}"
    for old in offline_dirs(base, run_id):
        shutil.rmtree(old)
    wb = start(project, run_id, base, mode, {"robustperf.kind": "report"})
    try:
        artifact = wandb.Artifact(wandb_id(run_id), type="report")
        artifact.add_dir(str(report))
        wb.log_artifact(artifact)
    finally:
        wb.finish()


class WandbLive:
    """Live logging of one training run to W&B (offline unless the config says otherwise)."""

    name = "wandb"

    def __init__(self, project: str, directory: str | Path, mode: str, run_id: str, params: dict[str, Any],
                 entity: str | None = None) -> None:
        self.run = start(project, run_id, Path(directory), mode, params, entity=entity)

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)


__all__ = ["FINGERPRINT_FILE", "WandbLive", "export_wandb", "offline_dirs", "start", "wandb_id"]
