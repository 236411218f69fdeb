"""A study end to end through the CLI: the local pool trains real runs, the report is written, a rerun skips."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from robustperf.store import load_index
from robustperf.sweep import run_study, study_from_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_targets import TINY  # noqa: E402


@pytest.mark.parametrize("executor", ["local"])
def test_run_study_end_to_end_with_the_cli(tmp_path: Path, executor: str) -> None:
    import yaml
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    study = {"name": "e2e", "base": TINY, "grid": {"model.kwargs.width": [2, 3]}, "runs_dir": str(tmp_path / "runs"),
             "fit": {"bootstrap": 0, "surface": "none"}, "executor": {"name": executor, "workers": 2,
                                                                      "gpus_per_run": 0}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    result = CliRunner().invoke(app, ["study", str(path)])
    assert result.exit_code == 0, result.output
    rows = load_index(tmp_path / "runs")
    assert sorted(r["status"] for r in rows) == ["finished", "finished"]
    assert (tmp_path / "runs" / "reports" / "e2e" / "report.html").exists()
    again = run_study(study_from_dict(study), executor=executor)
    assert again.execution.count("skipped") == 2
