"""`robustperf runs list|show|reindex`: read the run index."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from robustperf.cli.common import console, fail

runs_app = typer.Typer(help="List and inspect stored runs.", no_args_is_help=True)

RUNS_DIR = typer.Option(Path("runs"), "--runs-dir", help="directory holding one folder per run")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


@runs_app.command("list")
def list_runs(runs_dir: Path = RUNS_DIR) -> None:
    """One line per run: id, status, model, method, clean and robust accuracy, cost."""
    from robustperf.cli.common import user_errors
    from robustperf.store import load_index

    _existing(runs_dir)
    with user_errors():  # an unreadable directory is one line naming it
        rows = load_index(runs_dir)
    if not rows:
        console.print(f"no runs in {runs_dir}")
        return
    from robustperf.store import schema
    from robustperf.store.robust import robust_accuracy

    before = schema.columns(schema.RUN_ID, schema.STATUS, schema.CONFIG_MODEL, schema.CONFIG_METHOD)
    robust_cols = schema.columns(schema.ROBUST_CLEAN_ACC, schema.ROBUST_ACC)  # shown as robust_accuracy() gives them
    after = schema.columns(schema.COST.train_flops, schema.COST.energy_kwh)
    table = Table(*(c.short for c in (*before, *robust_cols)), "robust acc from", *(c.short for c in after))
    for r in rows:
        robust = robust_accuracy(r)  # the same number as the report and the fits (issue 27)
        table.add_row(*(_fmt(r.get(c.key)) for c in before), _fmt(robust.clean), _fmt(robust.value), robust.short(),
                      *(_fmt(r.get(c.key)) for c in after))
    console.print(table)
    corrupt = [str(r[schema.RUN_ID]) for r in rows if r.get(schema.STATUS) == "corrupt"]
    if corrupt:
        console.print(f"{len(corrupt)} run(s) unreadable ({', '.join(corrupt[:5])}{', ...' if len(corrupt) > 5 else ''}): "
                      f"see `robustperf runs show RUN` and `robustperf runs repair --runs-dir {runs_dir}`")


def _existing(runs_dir: Path) -> None:
    """Refuse a runs directory that does not exist (a typo must not create one)."""
    if not runs_dir.is_dir():
        fail(f"{runs_dir} is not a directory: pass the runs directory with --runs-dir (nothing was created)")


@runs_app.command("show")
def show_run(run: str = typer.Argument(..., help="run id or run directory"), runs_dir: Path = RUNS_DIR) -> None:
    """Print a run's resolved config and result record as JSON."""
    from robustperf.cli.common import user_errors
    from robustperf.names import path_under
    from robustperf.store import RunDir

    # an explicit run directory (it holds a config or a record) is taken as given; anything else is a run id,
    # which must stay inside the runs directory
    given = Path(run)
    explicit = (given / "config.json").is_file() or (given / "result.json").is_file()
    with user_errors():
        path = given if explicit else path_under(runs_dir, run)
    rd = RunDir(path)
    if not rd.exists():
        fail(f"no run {run!r} in {runs_dir} (see `robustperf runs list --runs-dir DIR`)")
    with user_errors():  # a damaged file is named, with the fix
        record = rd.read_record()
        out = {"run_dir": str(rd.path), "config": rd.read_config(), "result": record.to_dict() if record else None}
    if record is not None:  # the run's one robust accuracy, with the attack set, checkpoint and eps actually used
        from dataclasses import asdict

        from robustperf.store import schema
        from robustperf.store.index import flatten
        from robustperf.store.robust import robust_accuracy

        result = record.to_dict()
        config = out["config"] if isinstance(out["config"], dict) else {}
        row = {schema.RUN_ID: record.run_id, **flatten(config, schema.CONFIG_PREFIX),
               **{k: v for section in ("final", "best", "evaluations")
                  for k, v in flatten(result.get(section) or {}, f"{section}.").items()}}
        out["robust_accuracy"] = asdict(robust_accuracy(row))
    console.print_json(json.dumps(out))


@runs_app.command("reindex")
def reindex(runs_dir: Path = RUNS_DIR) -> None:
    """Rebuild index.sqlite from the run directories."""
    from robustperf.cli.common import user_errors
    from robustperf.store import rebuild_index

    _existing(runs_dir)
    with user_errors():  # read-only: one line naming the path
        console.print(str(rebuild_index(runs_dir)))


@runs_app.command("repair")
def repair(runs_dir: Path = RUNS_DIR) -> None:
    """Make damaged run directories readable: rebuild result.json from the last checkpoint, else mark the run corrupt."""
    from robustperf.cli.common import user_errors
    from robustperf.store import rebuild_index
    from robustperf.store.repair import repair_runs

    _existing(runs_dir)
    with user_errors():
        outcomes = repair_runs(runs_dir)
        table = Table("run_id", "status", "action")
        for o in outcomes:
            table.add_row(o.run_id, o.status, o.action)
        console.print(table)
        rebuild_index(runs_dir)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
