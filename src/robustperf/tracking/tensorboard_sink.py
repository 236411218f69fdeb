"""TensorBoard: event files per run, exported or written live (`pip install robustperf[tensorboard]`).

Each run gets ``<dir>/<run_id>/`` with its metrics by step as scalars (``train/loss``, ``eval/robust_acc``),
its final/best/cost numbers as scalars at the last step, and its resolved config as a text summary. An
export writes a run into a fresh folder and swaps it in place of the old one (TensorBoard reads every event
file of a folder, so appending would show points twice); a folder whose ``robustperf_fingerprint`` file
matches the run is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from robustperf.tracking.source import RunExport

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "robustperf_fingerprint"


def writer(log_dir: Path) -> Any:  # -> torch.utils.tensorboard.SummaryWriter
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError("the TensorBoard tracker needs tensorboard: pip install 'robustperf[tensorboard]'") from None
    return SummaryWriter(log_dir=str(log_dir))


def _write_run(run: RunExport, folder: Path) -> None:
    w = writer(folder)
    try:
        w.add_text("config", "```\n" + json.dumps(run.params, indent=1, sort_keys=True) + "\n```", 0)
        for key, points in sorted(run.series.items()):
            for step, value in points:
                w.add_scalar(key, value, step)
        last = max((s for points in run.series.values() for s, _ in points), default=0)
        for key, value in sorted(run.summary.items()):
            w.add_scalar(key, value, last)
    finally:
        w.close()
    (folder / FINGERPRINT_FILE).write_text(run.fingerprint)


def export_tensorboard(runs: list[RunExport], root: str | Path) -> dict[str, str]:
    """Export runs as event files under `root`; returns {run_id: "exported" | "replaced" | "unchanged"}."""
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, str] = {}
    for run in runs:
        target = base / run.run_id
        marker = target / FINGERPRINT_FILE
        if marker.is_file() and marker.read_text() == run.fingerprint:
            outcome[run.run_id] = "unchanged"
            continue
        fresh = base / f".{run.run_id}.new-{os.getpid()}"
        shutil.rmtree(fresh, ignore_errors=True)
        _write_run(run, fresh)
        existed = target.exists()
        if existed:
            old = base / f".{run.run_id}.old-{os.getpid()}"
            os.replace(target, old)
            os.replace(fresh, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(fresh, target)
        outcome[run.run_id] = "replaced" if existed else "exported"
    log.info("TensorBoard %s: %s", base, outcome)
    return outcome


class TensorBoardLive:
    """Live scalars of one training run in ``<dir>/<run_id>/`` (SummaryWriter writes from its own thread)."""

    name = "tensorboard"

    def __init__(self, root: str | Path, run_id: str, params: dict[str, Any]) -> None:
        self.writer = writer(Path(root) / run_id)
        self.writer.add_text("config", "```\n" + json.dumps(params, indent=1, sort_keys=True) + "\n```", 0)

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self, status: str) -> None:
        self.writer.add_text("status", status, 0)
        self.writer.close()


__all__ = ["FINGERPRINT_FILE", "TensorBoardLive", "export_tensorboard"]
