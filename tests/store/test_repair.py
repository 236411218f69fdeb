"""Damaged files are named and survivable; files respect the umask; the index survives concurrent rebuilds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from robustperf.config import RunConfig
from robustperf.store import RunDir, load_index, rebuild_index, write_json_atomic
from robustperf.store.io import DamagedFileError, read_json
from robustperf.store.metrics_file import repair_metrics_tail
from robustperf.store.repair import repair_run, repair_runs
from robustperf.training import train

TINY = {"data.dataset": "digits", "data.n_train": 60, "data.n_test": 40, "data.batch_size": 30,
        "model.name": "tiny_cnn", "model.kwargs": {"width": 2}, "method.attack.n_steps": 1,
        "method.attack.eps": 0.1, "method.attack.step_size": 0.05, "optim.epochs": 2, "eval.n_examples": 20,
        "eval.attack.n_steps": 1, "runtime.device": "cpu", "runtime.progress": False, "cost.energy_meter": "none"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Iterator[RunDir]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the resumed runs below compare bit for bit with this one
    yield train(RunConfig().with_overrides(TINY), tmp_path_factory.mktemp("runs"))
    torch.set_num_threads(threads)


def _copy(rd: RunDir, dest: Path) -> RunDir:
    import shutil

    shutil.copytree(rd.path, dest / rd.run_id)
    return RunDir(dest / rd.run_id)


def test_a_truncated_result_is_named_with_the_fix(finished: RunDir, tmp_path: Path) -> None:
    rd = _copy(finished, tmp_path)
    text = rd.result_path.read_text()
    rd.result_path.write_text(text[: len(text) // 2])
    with pytest.raises(DamagedFileError) as err:
        rd.read_record()
    message = str(err.value)
    assert str(rd.result_path) in message and "robustperf runs repair --runs-dir" in message and "line" in message
    row = load_index(tmp_path)[0]
    assert row["status"] == "corrupt" and str(rd.result_path) in row["failure_reason"]


def test_repair_rebuilds_the_result_from_the_checkpoint_and_training_finishes_it(finished: RunDir,
                                                                                 tmp_path: Path) -> None:
    rd = _copy(finished, tmp_path)
    rd.result_path.write_text('{"run_id": "x", "status": "fin')
    outcome = repair_run(rd)
    assert outcome.status == "interrupted" and "rebuilt result.json from checkpoints/last.pt" in outcome.action
    assert rd.read_record().status == "interrupted"
    again = train(RunConfig().with_overrides(TINY), tmp_path)  # resumes at the last step: only finishes
    record, expected = again.read_record(), finished.read_record()
    assert record.status == "finished" and record.final == expected.final
    assert record.cost["train_flops"] == expected.cost["train_flops"]
    a = torch.load(again.checkpoints / "last.pt", weights_only=True)["model"]
    b = torch.load(finished.checkpoints / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_repairs_a_damaged_result_on_its_own(finished: RunDir, tmp_path: Path, caplog) -> None:
    rd = _copy(finished, tmp_path)
    rd.result_path.write_bytes(b"\x00\x00garbage")
    again = train(RunConfig().with_overrides(TINY), tmp_path)
    assert again.read_record().status == "finished" and "is damaged" in caplog.text


def test_without_a_checkpoint_the_run_is_marked_corrupt_and_the_report_says_so(finished: RunDir,
                                                                               tmp_path: Path) -> None:
    rd = _copy(finished, tmp_path)
    for p in rd.checkpoints.iterdir():
        p.write_bytes(b"truncated")
    rd.result_path.write_text("{")
    outcomes = repair_runs(tmp_path)
    assert [o.status for o in outcomes] == ["corrupt"]
    assert rd.read_record().status == "corrupt"
    from robustperf.report.analysis import left_out_notes, runs_frame

    frame, _ = runs_frame(load_index(tmp_path))
    notes = left_out_notes(frame)
    assert notes and rd.run_id in notes[0] and "status corrupt" in notes[0]


def test_torn_metrics_tail_is_cut_to_the_last_complete_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3')
    assert repair_metrics_tail(path) == 1
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'
    path.write_text('{"a": 1}\n{"a": 2, "b"\n')  # newline written, line still broken
    assert repair_metrics_tail(path) == 1 and path.read_text() == '{"a": 1}\n'
    assert repair_metrics_tail(path) == 0


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_respect_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "r.json", {"a": 1})
        (tmp_path / "runs").mkdir()
        rebuild_index(tmp_path / "runs")
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "runs" / "index.sqlite").stat().st_mode & 0o777 == mode
    assert read_json(tmp_path / "r.json") == {"a": 1}


REBUILD = textwrap.dedent(
    """
    import sys
    from robustperf.store import load_index, rebuild_index
    failures = 0
    for i in range(int(sys.argv[2])):
        try:
            rebuild_index(sys.argv[1])
            assert len(load_index(sys.argv[1], rebuild=False)) == int(sys.argv[3])
        except Exception as exc:
            failures += 1
            print(repr(exc), file=sys.stderr)
    print(failures)
    """
)


def test_three_processes_rebuilding_the_index_40_times_each_never_fail(finished: RunDir, tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"run-{i}").mkdir()
        write_json_atomic(tmp_path / f"run-{i}" / "config.json", {"i": i})
        write_json_atomic(tmp_path / f"run-{i}" / "result.json", {"run_id": f"run-{i}", "status": "finished"})
    procs = [subprocess.Popen([sys.executable, "-c", REBUILD, str(tmp_path), "40", "5"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [int(o[0].strip()) for o in outs] == [0, 0, 0], [o[1][-1000:] for o in outs]
    assert not list(tmp_path.glob(".*.tmp"))
