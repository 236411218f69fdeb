"""`robustperf models list`: the registered architectures and their default sizes."""

from __future__ import annotations

import typer
from rich.table import Table

from robustperf.cli.common import console, user_errors

models_app = typer.Typer(help="Model architectures.", no_args_is_help=True)


@models_app.command("list")
def list_models(
    num_classes: int = typer.Option(10, help="classes of the classifier head"),
    channels: int = typer.Option(3, help="input channels"),
    size: int = typer.Option(32, help="input side length"),
) -> None:
    """One line per model: name, parameters with default arguments, accepted arguments."""
    import torch

    from robustperf.models import MODELS, accepted_kwargs, count_parameters, create_model

    table = Table("model", "params (defaults)", "kwargs")
    with user_errors():
        for name in MODELS.names():
            kwargs = accepted_kwargs(MODELS.get(name))
            params = ""
            if name != "timm":  # timm needs model_name; use "timm/<name>" in configs
                # built on the meta device: counting needs shapes, not memory or initialisation time
                with torch.device("meta"):
                    model = create_model(name, num_classes=num_classes, input_shape=(channels, size, size))
                params = f"{count_parameters(model):,}"
            table.add_row(name, params, ", ".join(kwargs))
    console.print(table)
    console.print("any timm model: name 'timm/<model_name>' (e.g. timm/vit_tiny_patch16_224), weights only from "
                  "a local checkpoint_path")


@models_app.command("params")
def model_params(
    name: str = typer.Argument(..., help="model name, e.g. wide_resnet or timm/resnet18"),
    kwarg: list[str] = typer.Option([], "--kwarg", "-k", help="key=value architecture argument (repeatable)"),
    num_classes: int = typer.Option(10, help="classes of the classifier head"),
    channels: int = typer.Option(3, help="input channels"),
    size: int = typer.Option(32, help="input side length"),
) -> None:
    """Parameter count of one configuration, e.g. `models params wide_resnet -k depth=34 -k width=20`."""
    import torch
    import yaml

    from robustperf.cli.common import fail
    from robustperf.models import count_parameters, create_model

    kwargs = {}
    for item in kwarg:
        if "=" not in item:
            fail(f"--kwarg {item!r} must look like key=value (e.g. depth=28)")
        key, value = item.split("=", 1)
        kwargs[key.strip()] = yaml.safe_load(value)
    with user_errors(), torch.device("meta"):
        model = create_model(name, num_classes=num_classes, input_shape=(channels, size, size), **kwargs)
    console.print(f"{name} {kwargs or ''}: {count_parameters(model):,} parameters")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
