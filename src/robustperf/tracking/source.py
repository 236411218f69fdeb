"""What leaves the run store: one `RunExport` per run directory, the same for every tracker.

A run's export holds its resolved config (flattened to ``section.key`` parameters), its metrics by step
(``train/loss`` and ``eval/robust_acc`` at the optimiser step they were logged), its final and best
metrics, its cost block and a fingerprint of its files: an exporter that finds a run already exported
with the same fingerprint leaves it alone, which is what makes exporting twice add nothing.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustperf.store import schema
from robustperf.store.index import flatten, iter_run_dirs
from robustperf.store.record import RunDir, RunStatus

TAG_RUN_ID = "robustperf.run_id"
TAG_FINGERPRINT = "robustperf.fingerprint"


@dataclass(frozen=True)
class RunExport:
    """One run as trackers see it.

    Attributes:
        run_id: the run store's id (the tracker's run name).
        status: finished, failed, running, interrupted, corrupt or pending.
        params: flattened resolved config, ``{"model.name": "wide_resnet", ...}``.
        series: ``{"train/loss": [(step, value), ...], "eval/robust_acc": [...]}``, steps increasing.
        summary: final, best and cost numbers, and the clean/robust accuracy of each stored evaluation:
            ``{"final/robust_acc": 0.4, "cost/energy_kwh": ..., "evaluations/<name>/robust_acc": ...}``.
        fingerprint: sha256 prefix of config.json, metrics.jsonl and result.json.
        path: the run directory.
    """

    run_id: str
    status: str
    params: dict[str, Any]
    series: dict[str, list[tuple[int, float]]]
    summary: dict[str, float]
    fingerprint: str
    path: Path
    tags: dict[str, str] = field(default_factory=dict)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _fingerprint(rd: RunDir) -> str:
    h = hashlib.sha256()
    for p in (rd.config_path, rd.metrics_path, rd.result_path):
        h.update(p.name.encode())
        h.update(p.read_bytes() if p.exists() else b"")
    return h.hexdigest()[:16]


def read_run(rd: RunDir) -> RunExport:
    """The export of one run directory (a damaged file raises `DamagedFileError` naming it)."""
    config = rd.read_config()
    record = rd.read_record()
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rd.read_metric_rows() if rd.metrics_path.exists() else []:  # events (resumed...) are not metrics
        if row.step is None:
            continue  # a row without its step cannot be placed on a curve
        for key, value in row.to_dict().items():
            number = _number(value)
            if number is not None and key not in ("step", "kind"):
                series.setdefault(f"{row.KIND}/{key}", []).append((row.step, number))
    summary: dict[str, float] = {}
    if record is not None:
        for section in (schema.FINAL, schema.BEST, schema.COST):  # the typed blocks, as the schema declares them
            block = getattr(record, section.name).to_dict()
            block.pop("constants", None)
            for key, value in flatten(block).items():
                number = _number(value)
                if number is not None:
                    summary[f"{section.name}/{key}"] = number
        for name, evaluation in sorted(record.evaluations.items()):  # `robustperf evaluate` results (AutoAttack...)
            safe = re.sub(r"[^A-Za-z0-9_./ -]", "_", str(name))
            for key in schema.EVALUATION_FIELDS:
                number = _number((evaluation or {}).get(key))
                if number is not None:
                    summary[f"evaluations/{safe}/{key}"] = number
    params = {k: v for k, v in flatten(config).items() if v is not None}
    tags = {TAG_RUN_ID: rd.run_id, TAG_FINGERPRINT: _fingerprint(rd),
            "robustperf.status": record.status if record else RunStatus.PENDING.value}
    return RunExport(run_id=rd.run_id, status=tags["robustperf.status"], params=params, series=series,
                     summary=summary, fingerprint=tags[TAG_FINGERPRINT], path=rd.path, tags=tags)


def read_runs(runs_dir: str | Path, run_ids: list[str] | None = None) -> list[RunExport]:
    """Every run of `runs_dir` (or those named), in run-id order.

    Raises:
        FileNotFoundError: `runs_dir` holds no runs, or a named run is not there.
    """
    dirs = {rd.run_id: rd for rd in iter_run_dirs(runs_dir)}
    if not dirs:
        raise FileNotFoundError(f"no runs in {runs_dir}: pass the runs directory with --runs-dir")
    missing = sorted(set(run_ids or []) - set(dirs))
    if missing:
        raise FileNotFoundError(f"no run {', '.join(missing)} in {runs_dir} (see `robustperf runs list`)")
    chosen = sorted(run_ids) if run_ids else sorted(dirs)
    return [read_run(dirs[r]) for r in chosen]


__all__ = ["TAG_FINGERPRINT", "TAG_RUN_ID", "RunExport", "read_run", "read_runs"]
