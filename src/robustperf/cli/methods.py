"""`robustperf methods list`: the registered training methods."""

from __future__ import annotations

import typer
from rich.table import Table

from robustperf.cli.common import console

methods_app = typer.Typer(help="Training methods.", no_args_is_help=True)


@methods_app.command("list")
def list_methods() -> None:
    """One line per training method: name, AWP support, summary."""
    from robustperf.training.methods import METHODS

    table = Table("method", "awp", "summary")
    for name in METHODS.names():
        spec = METHODS.get(name)
        table.add_row(name, "yes" if spec.supports_awp else "", spec.summary)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(methods_app, name="methods")
