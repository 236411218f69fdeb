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
- a damaged ``config.json`` (truncated, or valid JSON of the wrong shape): rebuilt by `repair_run` from the
  copy the newest loadable checkpoint holds (`robustperf.store.checkpoint.save_last` stores it); without
  one the run is reported ``corrupt`` by the index, naming the file.
- a ``result.json`` of the wrong shape (``[]``, ``"final": "oops"``) is damaged like a torn one.
- checkpoints that do not load (``torch.load(weights_only=True)`` fails: truncated, overwritten) and
  metrics lines that are not JSON objects (dropped from the curves) are reported by `repair_run`.

`open_run` is what the owner of a run does once it holds the run's lock (`robustperf.store.owner.hold_run`).
Statuses are written through `RunSession.record_rebuilt` / `record_corrupt`, never here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustperf.store.blocks import Metrics
from robustperf.store.io import DamagedFileError, UnsafeLinkError, write_json_atomic
from robustperf.store.lock import RunLock, RunLockedError
from robustperf.store.metrics_file import repair_metrics_tail
from robustperf.store.record import RunDir, RunStatus, utcnow
from robustperf.store.session import RunSession

log = logging.getLogger(__name__)

_CHECKPOINTS = ("last.pt", "last.prev.pt")  # the training engine's resume points, newest first


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
            rd.read_record()  # checked against the record's shape
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


def _load_checkpoint(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(payload, None) for a loadable resume checkpoint, else (None, why it is not usable)."""
    try:
        import torch
    except ImportError:  # scaling-only installs: nothing to rebuild from
        return None, "torch is not installed"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file: this checkpoint is not usable
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"
    if not isinstance(payload, dict) or "progress" not in payload:
        return None, "not a robustperf training checkpoint"
    return payload, None


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics a rebuilt record keeps: the known `Metrics` fields, as the training loop's summary."""
    return {k: metrics[k] for k in Metrics.known() if k in metrics}


def _checkpoints(rd: RunDir) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """The loadable resume checkpoints (newest first) and one note per checkpoint file that does not load."""
    loaded, notes = [], []
    for name in _CHECKPOINTS:
        path = rd.checkpoints / name
        if not path.exists():
            continue
        payload, why = _load_checkpoint(path)
        if payload is None:
            notes.append(f"checkpoints/{name} does not load ({why}): truncated or overwritten")
        else:
            loaded.append((name, payload))
    best = rd.checkpoints / "best.pt"
    if best.exists():
        try:
            import torch

            torch.load(best, map_location="cpu", weights_only=True)
        except ImportError:
            pass
        except Exception as exc:
            notes.append(f"checkpoints/best.pt does not load ({type(exc).__name__}): truncated or overwritten")
    return loaded, notes


def repair_run(rd: RunDir) -> RepairOutcome:
    """Make a damaged run directory readable again; a healthy one is left alone.

    Cuts a torn metrics tail and reports metrics lines that are not JSON objects; reports checkpoints that
    do not load; rebuilds a damaged or wrong-shaped ``config.json`` from the copy a checkpoint holds;
    rebuilds a damaged or wrong-shaped ``result.json`` from the newest loadable checkpoint (status
    ``interrupted``: the next training call resumes there and writes the final record) or marks the run
    ``corrupt`` with the reason.
    """
    notes = []
    if repair_metrics_tail(rd.metrics_path):
        notes.append("dropped 1 torn metrics line at its end")
    _, garbage = rd.read_metrics_counted()
    if garbage:
        shown = ", ".join(map(str, garbage[:5])) + (", ..." if len(garbage) > 5 else "")
        notes.append(f"{len(garbage)} metrics line(s) are not JSON objects and are left out of its curves (line "
                     f"{shown} of metrics.jsonl)")
    loaded, checkpoint_notes = _checkpoints(rd)
    notes += checkpoint_notes
    try:
        rd.read_config()
    except (DamagedFileError, FileNotFoundError) as exc:
        source = next(((name, p["config"]) for name, p in loaded if isinstance(p.get("config"), dict)), None)
        if source is None:
            return _outcome(rd, RunStatus.CORRUPT.value, f"config.json unusable ({exc}); no checkpoint holds a copy "
                            f"to rebuild it from: delete {rd.path} and run it again", notes)
        write_json_atomic(rd.config_path, source[1])
        notes.append(f"rebuilt config.json from the copy in checkpoints/{source[0]}")
    try:
        record = rd.read_record()
        status = record.status if record is not None else RunStatus.PENDING
        return _outcome(rd, status.value, "result.json readable", notes)
    except DamagedFileError as exc:
        damage = exc.detail
    for name, payload in loaded:
        step = int(payload["progress"].get("step", 0))
        reason = (f"result.json was damaged ({damage}) and was rebuilt from checkpoints/{name} at step {step} on "
                  f"{utcnow()}; run the same command again to finish it")
        RunSession.record_rebuilt(rd, reason, final=_summary(dict(payload.get("last_eval") or {})),
                                  best=_summary(dict(payload.get("best") or {})))
        return _outcome(rd, RunStatus.INTERRUPTED.value,
                        f"rebuilt result.json from checkpoints/{name} (step {step}); rerun to finish", notes)
    reason = f"result.json was damaged ({damage}) and no checkpoint could rebuild it; delete {rd.path} and rerun"
    RunSession.record_corrupt(rd, reason)
    return _outcome(rd, RunStatus.CORRUPT.value, "no loadable checkpoint: marked corrupt", notes)


def _outcome(rd: RunDir, status: str, action: str, notes: list[str]) -> RepairOutcome:
    if not notes and action == "result.json readable":
        action = "result.json readable, nothing to do"
    return RepairOutcome(rd.run_id, status, "; ".join([action, *notes]))


def repair_runs(runs_dir: str | Path) -> list[RepairOutcome]:
    """`repair_run` on every run directory under `runs_dir` (each under its lock; held runs are skipped)."""
    out = []
    root = Path(runs_dir)
    # a run whose config.json is lost still has its result.json or checkpoints (the config can be rebuilt)
    marks = ("config.json", "result.json", "checkpoints")
    for path in sorted(p for p in root.iterdir() if p.is_dir() and any((p / m).exists() for m in marks)):
        rd = RunDir(path)
        try:
            with RunLock(path, what="repaired"):
                clean_stale_temps(path)
                out.append(repair_run(rd))
        except RunLockedError as exc:
            out.append(RepairOutcome(rd.run_id, "locked", str(exc)))
        except (UnsafeLinkError, OSError) as exc:  # a planted link, a read-only run: this run only
            out.append(RepairOutcome(rd.run_id, "unrepaired", str(exc)))
    return out


__all__ = ["RepairOutcome", "clean_stale_temps", "open_run", "repair_run", "repair_runs"]
