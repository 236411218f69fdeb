"""`robustperf runs export`: the command exports, a second call leaves everything unchanged, bad input is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from robustperf.cli.app import app


def test_runs_export_twice(runs_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    runner = CliRunner()
    args = ["runs", "export", "--to", "tensorboard", "--runs-dir", str(runs_dir), "--target", str(tmp_path / "tb")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "exported" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "unchanged" in second.output and "exported" not in second.output
    csv = runner.invoke(app, ["runs", "export", "--to", "csv", "--runs-dir", str(runs_dir), "--target",
                              str(tmp_path / "t")])
    assert csv.exit_code == 0 and (tmp_path / "t" / "runs.csv").is_file() and (tmp_path / "t" / "metrics.csv").is_file()


def test_runs_export_errors_are_one_line(runs_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["runs", "export", "--to", "neptune", "--runs-dir", str(runs_dir)])
    assert bad.exit_code == 2 and "use --to with one of csv, parquet" in bad.output
    empty = runner.invoke(app, ["runs", "export", "--to", "csv", "--runs-dir", str(tmp_path / "none")])
    assert empty.exit_code == 2 and "no runs in" in empty.output
