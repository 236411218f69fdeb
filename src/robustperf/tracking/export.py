"""`export_runs`: one call for every destination of ``robustperf runs export --to ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from robustperf.tracking.source import read_runs

Destination = Literal["csv", "parquet", "mlflow", "tensorboard", "wandb"]
DESTINATIONS: tuple[str, ...] = ("csv", "parquet", "mlflow", "tensorboard", "wandb")


def default_target(to: str, runs_dir: str | Path) -> str:
    """Where an export goes when no target is given: beside the runs, inside the runs directory."""
    root = Path(runs_dir)
    return {"csv": str(root / "export"), "parquet": str(root / "export"), "mlflow": f"file:{(root / 'mlruns').resolve()}",
            "tensorboard": str(root / "tensorboard"), "wandb": str(root)}[to]


def export_runs(runs_dir: str | Path, to: str, target: str | None = None, *, run_ids: list[str] | None = None,
                project: str = "robustperf", report: str | Path | None = None) -> dict[str, str]:
    """Export the runs of `runs_dir` (or those named) to `to`; returns {run_id or file: what happened}.

    Args:
        runs_dir: the run store.
        to: csv | parquet | mlflow | tensorboard | wandb.
        target: folder (csv, parquet, tensorboard, wandb) or tracking URI (mlflow); default `default_target`.
        run_ids: only these runs.
        project: MLflow experiment or W&B project name.
        report: a report folder to export with the runs (csv/parquet: copied; mlflow: artifacts of a "report"
            run; wandb: an artifact of type "report"; tensorboard, which has no artifacts: refused).

    Raises:
        ValueError: an unknown destination, before anything is read.
        FileNotFoundError: no runs, or a named run is missing.
        ImportError: the tracker's package is not installed (the message names the extra).
    """
    if to not in DESTINATIONS:
        raise ValueError(f"cannot export to {to!r}: use one of {', '.join(DESTINATIONS)}")
    if report is not None and not Path(report).is_dir():
        raise FileNotFoundError(f"report folder {report} does not exist: write it with `robustperf report` first")
    if report is not None and to == "tensorboard":
        raise ValueError("TensorBoard has no artifacts to hold a report: drop --report, or export it --to mlflow/wandb")
    where = target or default_target(to, runs_dir)
    runs = read_runs(runs_dir, run_ids)
    if to in ("csv", "parquet"):
        from robustperf.tracking.table import export_table

        return {str(p): "written" for p in export_table(runs, where, "csv" if to == "csv" else "parquet", report)}
    if to == "mlflow":
        from robustperf.tracking.mlflow_sink import export_mlflow

        return export_mlflow(runs, where, project, report)
    if to == "tensorboard":
        from robustperf.tracking.tensorboard_sink import export_tensorboard

        return export_tensorboard(runs, where)
    from robustperf.tracking.wandb_sink import export_wandb

    return export_wandb(runs, where, project, report=report)


__all__ = ["DESTINATIONS", "Destination", "default_target", "export_runs"]
