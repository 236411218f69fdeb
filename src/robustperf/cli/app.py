"""The `robustperf` command.

Every module in this package that defines ``register(app)`` adds its commands
(``train.py`` adds ``train``, ``runs.py`` adds the ``runs`` group, ...). The
modules import torch and other heavy dependencies inside their command
functions, so ``robustperf fit`` works without torch installed.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

import typer

app = typer.Typer(
    name="robustperf",
    help="Measure and forecast what adversarial robustness costs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="log at DEBUG level"),
          debug: bool = typer.Option(False, "--debug", help="show the traceback of an error")) -> None:
    from robustperf.cli.common import set_debug

    set_debug(debug)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _register_all() -> None:
    import robustperf.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in {"app", "common"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"robustperf.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main() -> None:
    app()
