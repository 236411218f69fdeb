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


def leaderboard_entry_cmd(
    run: Path = typer.Argument(..., help="the run's directory"),
    out: Path = typer.Option(Path("model_info"), "--out", help="model_info root: <out>/<dataset>/<Linf|L2>/<name>.json"),
    n_examples: int = typer.Option(10_000, "--n-examples", min=1, help="first N test points (RobustBench: 10000)"),
    which: str = typer.Option("best", "--which", help="best | last checkpoint"),
    eps: float | None = typer.Option(None, "--eps", help="radius (default: the run's training radius)"),
    set_attack: list[str] = typer.Option([], "--set-attack", help="a stage's setting, e.g. square.n_queries=1000"),
    batch_size: int = typer.Option(500, "--batch-size", min=1),
    device: str | None = typer.Option(None, "--device"),
    energy_meter: str | None = typer.Option(None, "--energy-meter", help="default: the run's cost.energy_meter"),
    watts: float | None = typer.Option(None, "--watts"),
    name: str | None = typer.Option(None, "--name", help="the entry's model name (default: the run id)"),
    paper_name: str = typer.Option("", "--paper-name"), link: str = typer.Option("", "--link"),
    authors: str = typer.Option("", "--authors"), venue: str = typer.Option("", "--venue"),
    additional_data: bool = typer.Option(False, "--additional-data"),
) -> None:
    """Evaluate RUN with AutoAttack and write its RobustBench model_info JSON, with its training and evaluation cost."""
    from robustperf.cli.zoo import parse_stage_settings
    from robustperf.config import config_from_dict
    from robustperf.store import RunDir
    from robustperf.zoo.leaderboard import run_leaderboard_entry
    from robustperf.zoo.model_info import Paper

    if which not in ("best", "last"):
        fail(f"--which {which!r}: use best or last")
    rd = RunDir(run)
    if not rd.exists():
        fail(f"{run} is not a run directory (no config.json); see `robustperf runs list`")
    with user_errors():
        params = parse_stage_settings(set_attack)
        cost = config_from_dict(rd.read_config()).cost
        changes = {k: v for k, v in (("energy_meter", energy_meter), ("watts", watts)) if v is not None}
        path, info = run_leaderboard_entry(
            rd.path, out, n_examples=n_examples, which=which, eps=eps, batch_size=batch_size, device=device,
            attack_params=params, cost_cfg=cost.model_copy(update=changes), name=name,
            paper=Paper(paper_name or name or rd.run_id, link, authors, venue, additional_data))
    console.print(f"{rd.run_id}: clean {info['clean_acc']} %, AutoAttack {info['autoattack_acc']} % "
                  f"-> {path}")


def register(app: typer.Typer) -> None:
    runs_app.command("export")(export_cmd)
    runs_app.command("leaderboard-entry")(leaderboard_entry_cmd)
