"""`robustperf models list|params`."""

from __future__ import annotations

from typer.testing import CliRunner

from robustperf.cli.app import app

runner = CliRunner()


def test_models_list_shows_every_model_with_default_sizes() -> None:
    result = runner.invoke(app, ["models", "list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("wide_resnet", "resnet18", "resnet50", "preact_resnet18", "tiny_cnn", "tiny_mlp", "timm"):
        assert name in result.output
    assert "36,479,194" in result.output  # WRN-28-10 default


def test_models_params_with_kwargs_and_bad_kwarg() -> None:
    result = runner.invoke(app, ["models", "params", "wide_resnet", "-k", "depth=34", "-k", "width=10"])
    assert result.exit_code == 0, result.output
    assert "46,160,474" in result.output  # WRN-34-10 (Madry-style robust baseline), 10 classes
    bad = runner.invoke(app, ["models", "params", "wide_resnet", "-k", "widht=10"])
    assert bad.exit_code == 2 and "widht" in bad.output
