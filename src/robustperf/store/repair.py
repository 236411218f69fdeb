"""Damaged run directories: find them, say which file is damaged, and rebuild what can be rebuilt.

What a crash or a full disk can leave behind, and what happens to it:

- ``.<name>.<random>.tmp`` files of interrupted atomic writes: removed when the run is next opened
  (`clean_stale_temps`; only its owner, who holds the run lock, does this).
- a torn last line of ``metrics.jsonl`` (a write cut short): cut back to the last complete line when
  the run is next opened, with a warning giving the number of lines dropped (`repair_metrics_tail`),
  so the next row is not glued onto the fragment.
- a damaged ``result.json``: rebuilt from the newest loadable ``checkpoints/last.pt`` as an
  ``interrupted`` run (the next training call resumes from that checkpoint and writes the final record,
  its cost included); with no loadable checkpoint the run is marked ``corrupt`` (`repair_run`).
- a damaged ``config.json``: nothing to rebuild from; the run is reported ``corrupt`` by the index.

`open_run` is what the owner of a run does once it holds the run's lock (`robustperf.store.owner.hold_run`).
Statuses are written through `RunSession.record_rebuilt` / `record_corrupt`, never here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustperf.store.io import DamagedFileError, read_json
from robustperf.store.lock import RunLock, RunLockedError
from robustperf.store.metrics_file import repair_metrics_tail
from robustperf.store.record import RunDir, RunStatus, utcnow
from robustperf.store.session import RunSession

log = logging.getLogger(__name__)

_CHECKPOINTS = ("last.pt", "last.prev.pt")  # the training engine's resume points, newest first
_SUMMARY_KEYS = ("epoch", "step", "samples_seen", "clean_acc", "robust_acc", "adv_loss", "adv_ce", "clean_loss",
                 "train_loss", "n_params")


def clean_stale_temps(directory: str | Path) -> int:
    """Remove temp files of interrupted atomic writes (``.*.tmp``) in a run directory and its subfolders.

    Only the process that holds the run's lock may call this (another writer's temp file would be live).
    Returns the number of files removed.
    """
    root = Path(directory)
    removed = 0
    if not root.is_dir():
        return 0
    for path in root.rglob(".*.tmp"):
        if path.is_file() and not path.is_symlink():
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
    if removed:
        log.warning("%s: removed %d temp file(s) left by an interrupted write", root, removed)
    return removed


def open_run(rd: RunDir) -> None:
    """What the owner of a run does on opening it: remove stale temps, fix a torn metrics tail, rebuild a
    damaged result.json (`repair_run`)."""
    clean_stale_temps(rd.path)
    repair_metrics_tail(rd.metrics_path)
    if rd.result_path.exists():
        try:
            read_json(rd.result_path)
        except DamagedFileError as exc:
            log.warning("%s", exc)
            outcome = repair_run(rd)
            log.warning("run %s: %s", rd.run_id, outcome.action)


@dataclass(frozen=True)
class RepairOutcome:
    """What `repair_run` did to one run directory."""

    run_id: str
    status: str  # the status the run has now: ok | interrupted | corrupt | ...
    action: str  # one line for a person


def _load_checkpoint(path: Path) -> dict[str, Any] | None:
    try:
        import torch
    except ImportError:  # scaling-only installs: nothing to rebuild from
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated or foreign file: this checkpoint is not usable
        return None
    return payload if isinstance(payload, dict) and "progress" in payload else None


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in _SUMMARY_KEYS if k in metrics}


def repair_run(rd: RunDir) -> RepairOutcome:
    """Make a damaged run directory readable again; a healthy one is left alone.

    Rebuilds a damaged ``result.json`` from the newest loadable checkpoint (status ``interrupted``:
    the next training call resumes there and writes the final record) or marks the run ``corrupt``
    with the reason; also fixes a torn metrics tail.
    """
    dropped = repair_metrics_tail(rd.metrics_path)
    tail = f"; dropped {dropped} torn metrics line" if dropped else ""
    try:
        read_json(rd.config_path)
    except (DamagedFileError, FileNotFoundError) as exc:
        return RepairOutcome(rd.run_id, RunStatus.CORRUPT.value, f"config.json unusable ({exc}); nothing to rebuild "
                                                                 f"from: delete {rd.path} and run it again{tail}")
    try:
        record = rd.read_record()
        status = record.status if record is not None else RunStatus.PENDING
        return RepairOutcome(rd.run_id, status.value, f"result.json readable, nothing to do{tail}")
    except DamagedFileError as exc:
        damage = exc.detail
    for name in _CHECKPOINTS:
        payload = _load_checkpoint(rd.checkpoints / name)
        if payload is None:
            continue
        step = int(payload["progress"].get("step", 0))
        reason = (f"result.json was damaged ({damage}) and was rebuilt from checkpoints/{name} at step {step} on "
                  f"{utcnow()}; run the same command again to finish it")
        RunSession.record_rebuilt(rd, reason, final=_summary(dict(payload.get("last_eval") or {})),
                                  best=_summary(dict(payload.get("best") or {})))
        return RepairOutcome(rd.run_id, RunStatus.INTERRUPTED.value,
                             f"rebuilt result.json from checkpoints/{name} (step {step}); rerun to finish{tail}")
    reason = f"result.json was damaged ({damage}) and no checkpoint could rebuild it; delete {rd.path} and rerun"
    RunSession.record_corrupt(rd, reason)
    return RepairOutcome(rd.run_id, RunStatus.CORRUPT.value, f"no loadable checkpoint: marked corrupt{tail}")


def repair_runs(runs_dir: str | Path) -> list[RepairOutcome]:
    """`repair_run` on every run directory under `runs_dir` (each under its lock; held runs are skipped)."""
    out = []
    root = Path(runs_dir)
    for path in sorted(p for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()):
        rd = RunDir(path)
        try:
            with RunLock(path, what="repaired"):
                clean_stale_temps(path)
                out.append(repair_run(rd))
        except RunLockedError as exc:
            out.append(RepairOutcome(rd.run_id, "locked", str(exc)))
    return out


__all__ = ["RepairOutcome", "clean_stale_temps", "open_run", "repair_run", "repair_runs"]
