"""`robustperf report` on a runs directory, with a published overlay."""

from __future__ import annotations

import sys
from pathlib import Path

from robustperf.report import runs_frame
from robustperf.store import load_index

sys.path.insert(0, str(Path(__file__).resolve().parent))
import planted_runs  # noqa: E402

SHARED = Path("/work/shared/data")


def test_report_cli_on_a_runs_dir(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    planted_runs.write_planted_runs(runs_dir)
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    csv = SHARED / "robustbench" / "robustbench_linf_leaderboard.csv"
    args = ["report", str(runs_dir), "--out", str(tmp_path / "r")] + (["--overlay", str(csv)] if csv.exists() else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "report.html").exists()
    frame, _ = runs_frame(load_index(runs_dir))
    assert (frame["status"] == "finished").sum() == 16
