"""MLflow: export stored runs, and log a run live while it trains (`pip install robustperf[mlflow]`).

A run is one MLflow run named by its run id and tagged ``robustperf.run_id``; its parameters are the
flattened resolved config, its metrics the metrics by step, its summary the final/best/cost numbers at
the last step, and config.json / result.json are artifacts. An export finds the MLflow run by that tag:
the same fingerprint is left as it is; another one (the run went on, or it was logged live) is deleted
and written again, so the experiment never holds a run twice.

A ``file:`` tracking URI uses MLflow's file store, which MLflow 3 keeps only behind
``MLFLOW_ALLOW_FILE_STORE=true``: choosing a file: URI sets it (unless already set).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robustperf.tracking.source import TAG_FINGERPRINT, TAG_RUN_ID, RunExport

log = logging.getLogger(__name__)

_BATCH = 900  # MLflow's log_batch takes at most 1000 metrics and 100 params per call
_PARAM_BATCH = 100


def client(uri: str) -> Any:  # -> mlflow.tracking.MlflowClient
    """An MlflowClient for `uri` (``file:/path``, ``sqlite:///db``, ``http://host``)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ImportError("the MLflow tracker needs mlflow: pip install 'robustperf[mlflow]'") from None
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=uri)


def experiment_id(mlf: Any, name: str) -> str:
    exp = mlf.get_experiment_by_name(name)
    return str(exp.experiment_id) if exp is not None else str(mlf.create_experiment(name))


def find_runs(mlf: Any, exp_id: str, run_id: str) -> list[Any]:
    """Active MLflow runs of the experiment tagged with this robustperf run id."""
    return list(mlf.search_runs([exp_id], filter_string=f"tags.`{TAG_RUN_ID}` = '{run_id}'"))


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _log_params(mlf: Any, mlflow_run: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
    for chunk in _chunks(items, _PARAM_BATCH):
        mlf.log_batch(mlflow_run, params=chunk)


def log_metrics(mlf: Any, mlflow_run: str, values: dict[str, float], step: int) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, int(step)) for k, v in values.items()]
    for chunk in _chunks(items, _BATCH):
        mlf.log_batch(mlflow_run, metrics=chunk)


def _write_run(mlf: Any, exp_id: str, run: RunExport) -> None:
    from mlflow.entities import Metric

    mlflow_run = mlf.create_run(exp_id, run_name=run.run_id, tags=run.tags).info.run_id
    _log_params(mlf, mlflow_run, run.params)
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, step) for k, points in sorted(run.series.items()) for step, v in points]
    last = max((s for points in run.series.values() for s, _ in points), default=0)
    metrics += [Metric(k, v, now, last) for k, v in sorted(run.summary.items())]
    for chunk in _chunks(metrics, _BATCH):
        mlf.log_batch(mlflow_run, metrics=chunk)
    for name in ("config.json", "result.json"):
        if (run.path / name).is_file():
            mlf.log_artifact(mlflow_run, str(run.path / name))
    status = {"finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}.get(run.status, "FINISHED")
    mlf.set_terminated(mlflow_run, status)


def export_mlflow(runs: list[RunExport], uri: str, experiment: str = "robustperf",
                  report: str | Path | None = None) -> dict[str, str]:
    """Export runs to MLflow; returns {run_id: "exported" | "replaced" | "unchanged"}."""
    mlf = client(uri)
    exp_id = experiment_id(mlf, experiment)
    outcome: dict[str, str] = {}
    for run in runs:
        found = find_runs(mlf, exp_id, run.run_id)
        if len(found) == 1 and found[0].data.tags.get(TAG_FINGERPRINT) == run.fingerprint:
            outcome[run.run_id] = "unchanged"
            continue
        for old in found:
            mlf.delete_run(old.info.run_id)
        _write_run(mlf, exp_id, run)
        outcome[run.run_id] = "replaced" if found else "exported"
    if report is not None:
        _export_report(mlf, exp_id, Path(report))
    log.info("MLflow %s, experiment %s: %s", uri, experiment, outcome)
    return outcome


def _export_report(mlf: Any, exp_id: str, report: Path) -> None:
    """The report folder as the artifacts of one MLflow run tagged ``robustperf.run_id=report:<folder>``."""
    name = f"report:{report.name}"
    for old in find_runs(mlf, exp_id, name):
        mlf.delete_run(old.info.run_id)
    mlflow_run = mlf.create_run(exp_id, run_name=name, tags={TAG_RUN_ID: name, "robustperf.kind": "report"})
    mlf.log_artifacts(mlflow_run.info.run_id, str(report), "report")
    mlf.set_terminated(mlflow_run.info.run_id, "FINISHED")


class MLflowLive:
    """Live logging of one training run into MLflow (reusing its MLflow run when the run resumes)."""

    name = "mlflow"

    def __init__(self, uri: str, experiment: str, run_id: str, params: dict[str, Any]) -> None:
        self.client = client(uri)
        exp_id = experiment_id(self.client, experiment)
        found = [r for r in find_runs(self.client, exp_id, run_id) if TAG_FINGERPRINT not in r.data.tags]
        if found:
            self.run = found[0].info.run_id
        else:
            self.run = self.client.create_run(exp_id, run_name=run_id, tags={TAG_RUN_ID: run_id,
                                                                               "robustperf.live": "true"}).info.run_id
            _log_params(self.client, self.run, params)

    def log(self, values: dict[str, float], step: int) -> None:
        log_metrics(self.client, self.run, values, step)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run, {"finished": "FINISHED", "failed": "FAILED"}.get(status, "KILLED"))


__all__ = ["MLflowLive", "client", "experiment_id", "export_mlflow", "find_runs", "log_metrics"]
