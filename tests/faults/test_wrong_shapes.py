"""One wrong-shaped record makes one run `corrupt`, named, never a crash of `runs list`, `report`, a study or
`runs repair`; repair rebuilds what a checkpoint holds and reports what it cannot use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.store import RunDir

TINY = {"name": "tiny", "data": {"dataset": "digits", "n_train": 60, "n_test": 40, "batch_size": 30},
        "model": {"name": "tiny_cnn", "kwargs": {"width": 2}},
        "method": {"attack": {"eps": 0.1, "step_size": 0.05, "n_steps": 1}}, "optim": {"epochs": 1},
        "eval": {"n_examples": 20, "attack": {"n_steps": 1}}, "cost": {"energy_meter": "none"},
        "runtime": {"device": "cpu", "progress": False}}
LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy_run" / "legacy-361d4f03516f"
WRONG = {"list": "[]", "final-text": '{"status": "finished", "final": "oops"}', "status-number": '{"status": 3}',
         "metric-text": '{"status": "finished", "final": {"robust_acc": "high"}}', "string": '"finished"'}
runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from robustperf.config import config_from_dict
    from robustperf.training import train

    runs = tmp_path_factory.mktemp("trained") / "runs"
    train(config_from_dict(TINY), runs)
    return runs


@pytest.fixture
def runs(trained: Path, tmp_path: Path) -> tuple[Path, RunDir]:
    """A copy of a finished run beside a healthy (legacy) one."""
    shutil.copytree(trained, tmp_path / "runs")
    shutil.copytree(LEGACY, tmp_path / "runs" / LEGACY.name)
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith("tiny-")]
    return tmp_path / "runs", RunDir(run)


def _repair(root: Path) -> dict[str, str]:
    """Each run's "status: action" line from `repair_runs` (what `runs repair` prints, unwrapped)."""
    from robustperf.store.repair import repair_runs

    return {o.run_id: f"{o.status}: {o.action}" for o in repair_runs(root)}


def _cli(*args: str) -> tuple[int, str]:
    out = runner.invoke(app, list(args), terminal_width=1000)
    return out.exit_code, " ".join(out.output.split())  # rich wraps at its own width: compare words


@pytest.mark.parametrize("text", list(WRONG.values()), ids=list(WRONG))
def test_runs_list_names_the_one_corrupt_run(runs: tuple[Path, RunDir], text: str) -> None:
    root, rd = runs
    rd.result_path.write_text(text)
    code, output = _cli("runs", "list", "--runs-dir", str(root))
    assert code == 0, output
    assert f"1 run(s) unreadable ({rd.run_id})" in output and "runs repair" in output
    assert "│ interr" in output  # the healthy run is listed as before
    code, output = _cli("runs", "show", rd.run_id, "--runs-dir", str(root))
    assert code == 2 and output.startswith("error: ") and "result.json is damaged (wrong shape" in output


@pytest.mark.parametrize("text", list(WRONG.values()), ids=list(WRONG))
def test_repair_rebuilds_a_wrong_shaped_result_from_the_checkpoint(runs: tuple[Path, RunDir], text: str) -> None:
    root, rd = runs
    from robustperf.store.repair import repair_runs

    rd.result_path.write_text(text)
    actions = {o.run_id: o.action for o in repair_runs(root)}
    assert actions[rd.run_id].startswith("rebuilt result.json from checkpoints/last.pt (step 2)")
    rd.result_path.write_text(text)
    code, output = _cli("runs", "repair", "--runs-dir", str(root))  # the CLI: exit 0, the run named
    assert code == 0 and rd.run_id in output, output
    record = rd.read_record()
    assert record is not None and record.status == "interrupted"


def test_report_names_the_corrupt_run_and_still_writes(runs: tuple[Path, RunDir], tmp_path: Path) -> None:
    root, rd = runs
    rd.result_path.write_text("[]")
    code, output = _cli("report", str(root), "--out", str(tmp_path / "rep"), "--bootstrap", "0")
    assert code == 0, output
    assert rd.run_id in (tmp_path / "rep" / "report.html").read_text()


def test_a_study_over_a_wrong_shaped_run_repairs_and_finishes_it(runs: tuple[Path, RunDir]) -> None:
    from robustperf.sweep import run_study, study_from_dict

    root, rd = runs
    rd.result_path.write_text('{"status": "finished", "final": "oops"}')
    study = study_from_dict({"name": "s", "base": TINY, "grid": {"model.kwargs.width": [2]},
                             "fit": {"bootstrap": 0}, "executor": {"workers": 1, "gpus_per_run": 0}})
    result = run_study(study, root, executor="local")
    assert result.execution is not None
    assert [s["status"] for s in result.execution.results] == ["finished"], result.execution.results
    record = rd.read_record()
    assert record is not None and record.status == "finished" and record.final.get("robust_acc") is not None


def test_repair_rebuilds_config_from_the_checkpoint(runs: tuple[Path, RunDir]) -> None:
    root, rd = runs
    original = rd.config_path.read_bytes()
    for text in ('{"data": [] }', '{"name": "tiny", "da', "[]"):
        rd.config_path.write_text(text)
        assert "rebuilt config.json from the copy in checkpoints/last.pt" in _repair(root)[rd.run_id]
        assert json.loads(rd.config_path.read_bytes()) == json.loads(original)
        assert rd.read_record().status == "finished"  # type: ignore[union-attr]


def test_repair_reports_truncated_checkpoints_and_garbage_metrics_lines(runs: tuple[Path, RunDir]) -> None:
    root, rd = runs
    last = rd.checkpoints / "last.pt"
    last.write_bytes(last.read_bytes()[:2000])
    lines = rd.metrics_path.read_text().splitlines(keepends=True)
    rd.metrics_path.write_text("".join([lines[0], "garbage{\n", "[1, 2]\n", *lines[1:]]))
    action = _repair(root)[rd.run_id]
    assert "checkpoints/last.pt does not load" in action and "truncated or overwritten" in action
    assert "2 metrics line(s) are not JSON objects" in action and "line 2, 3 of metrics.jsonl" in action
    assert len(rd.read_metrics()) == len(lines)


def test_a_config_without_a_checkpoint_copy_is_named_corrupt(tmp_path: Path) -> None:
    shutil.copytree(LEGACY, tmp_path / "runs" / LEGACY.name)  # written before checkpoints held the config
    rd = RunDir(tmp_path / "runs" / LEGACY.name)
    rd.config_path.write_text("[]")
    action = _repair(tmp_path / "runs")[LEGACY.name]
    assert action.startswith("corrupt: config.json unusable") and "no checkpoint holds a copy" in action
    code, output = _cli("runs", "list", "--runs-dir", str(tmp_path / "runs"))
    assert code == 0 and f"1 run(s) unreadable ({LEGACY.name})" in output


def test_a_damaged_index_is_rebuilt(runs: tuple[Path, RunDir]) -> None:
    from robustperf.store import load_index

    root, rd = runs
    load_index(root)
    (root / "index.sqlite").write_bytes(b"not a database at all" * 10)
    rows = load_index(root, rebuild=False)
    assert sorted(r["run_id"] for r in rows) == sorted([LEGACY.name, rd.run_id])
