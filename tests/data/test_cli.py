"""`robustperf data info|make-synthetic`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from robustperf.cli.app import app

runner = CliRunner()


def test_data_info_digits() -> None:
    result = runner.invoke(app, ["data", "info", "digits", "--set", "data.n_train=100"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "100" in result.output and "(1, 8, 8)" in result.output


def test_data_info_missing_cifar_names_the_fix(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "info", "cifar10", "--set", f"data.root={tmp_path}"], terminal_width=300)
    assert result.exit_code == 2
    assert "data.download=true" in " ".join(result.output.split())


def test_make_synthetic_round_trips_through_build_data(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    result = runner.invoke(app, ["data", "make-synthetic", "digits", "--out", str(out), "--fid", "9.5",
                                 "--set", "data.n_train=64"])
    assert result.exit_code == 0, result.output
    images = np.load(out / "images.npy")
    assert images.shape == (64, 8, 8, 1) and images.dtype == np.uint8
    assert json.loads((out / "meta.json").read_text())["fid"] == 9.5
    info = runner.invoke(app, ["data", "info", "digits", "--set", f"data.synthetic_path={out}",
                               "--set", "data.synthetic_fraction=0.5", "--set", "data.batch_size=10"],
                         terminal_width=200)
    assert info.exit_code == 0, info.output
    assert "9.5" in info.output and "5 of 10" in info.output
    again = runner.invoke(app, ["data", "make-synthetic", "digits", "--out", str(out)])
    assert again.exit_code == 2 and "not empty" in " ".join(again.output.split())
