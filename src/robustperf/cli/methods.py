"""`robustperf methods list`: the registered training methods."""

from __future__ import annotations

import typer
from rich.table import Table

from robustperf.cli.common import console

methods_app = typer.Typer(help="Training methods.", no_args_is_help=True)


@methods_app.command("list")
def list_methods() -> None:
    """One line per training method: name, AWP support, its method.kwargs with defaults, summary."""
    from robustperf.training.methods import METHODS, method_kwargs

    table = Table("method", "awp", "method.kwargs (default)", "summary")
    for name in METHODS.names():
        spec = METHODS.get(name)
        own = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v:g}" for k, v in method_kwargs(name).items())
        table.add_row(name, "yes" if spec.supports_awp else "", own, spec.summary)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(methods_app, name="methods")
