"""`robustperf runs export` and `runs leaderboard-entry`: runs out of the store, to trackers and to RobustBench.

Added to the ``runs`` group of `robustperf.cli.runs` (this module registers after it).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from robustperf.cli.common import console, fail, user_errors
from robustperf.cli.runs import RUNS_DIR, runs_app


def export_cmd(
    to: str = typer.Option(..., "--to", help="csv | parquet | mlflow | tensorboard | wandb"),
    target: str | None = typer.Option(None, "--target", help="folder, or an MLflow tracking URI (default: inside "
                                      "the runs directory: export/, mlruns/, tensorboard/, wandb/)"),
    run: list[str] = typer.Option([], "--run", help="export only this run id (repeatable)"),
    project: str = typer.Option("robustperf", "--project", help="MLflow experiment or W&B project"),
    report: Path | None = typer.Option(None, "--report", help="a report folder (robustperf report) to export too "
                                       "(csv/parquet: copied; mlflow: artifacts)"),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """Export runs (config, metrics by step, cost, final accuracies) to a table or a tracker; twice adds nothing."""
    from robustperf.tracking import DESTINATIONS, export_runs

    if to not in DESTINATIONS:
        fail(f"cannot export to {to!r}: use --to with one of {', '.join(DESTINATIONS)}")
    with user_errors():
        try:
            outcome = export_runs(runs_dir, to, target, run_ids=run or None, project=project, report=report)
        except ImportError as exc:
            fail(str(exc))
    table = Table("what", "outcome")
    for name, what in outcome.items():
        table.add_row(name, what)
    console.print(table)


def register(app: typer.Typer) -> None:
    runs_app.command("export")(export_cmd)
