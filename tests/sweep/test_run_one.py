"""`run_one` with the real training engine: finished runs skip, failures are recorded, studies run end to end."""

from __future__ import annotations

import sys
from pathlib import Path

from robustperf.config import RunConfig
from robustperf.store import RunDir
from robustperf.sweep import EvaluateSpec, run_one

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_targets import TINY  # noqa: E402


def test_run_one_finishes_then_skips(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate(TINY)
    first = run_one(cfg.resolved(), tmp_path)
    assert first["status"] == "finished", first
    record = RunDir(Path(first["run_dir"])).read_record()
    assert record.status == "finished" and record.final["robust_acc"] is not None
    mtime = (Path(first["run_dir"]) / "result.json").stat().st_mtime_ns
    again = run_one(cfg, tmp_path)
    assert again["status"] == "skipped"
    assert (Path(first["run_dir"]) / "result.json").stat().st_mtime_ns == mtime  # untouched


def test_run_one_records_a_failure_instead_of_raising(tmp_path: Path) -> None:
    bad = {**TINY, "data": {"dataset": "cifar10", "root": str(tmp_path / "no-cifar-here")}}
    out = run_one(bad, tmp_path / "runs")
    assert out["status"] == "failed" and out["failure_reason"]
    rd = RunDir(Path(out["run_dir"]))
    assert rd.read_record().status == "failed" and rd.read_record().failure_reason == out["failure_reason"]
    assert (rd.path / "failure.txt").read_text().startswith("Traceback")
    assert run_one(bad, tmp_path / "runs")["status"] == "failed"  # a failed run is retried, not skipped


def test_run_one_adds_the_study_evaluation_once(tmp_path: Path) -> None:
    spec = EvaluateSpec(attacks=("pgd",), which="final", n_examples=30, batch_size=30)
    out = run_one(TINY, tmp_path, evaluate=spec.model_dump())
    assert out["status"] == "finished"
    ev = RunDir(Path(out["run_dir"])).read_record().evaluations[spec.key]
    assert ev["n_examples"] == 30 and 0.0 <= ev["robust_acc"] <= ev["clean_acc"] <= 1.0
    assert run_one(TINY, tmp_path, evaluate=spec)["status"] == "skipped"


def test_run_one_reports_a_stop_signal_as_interrupted_and_resumes(tmp_path: Path, monkeypatch) -> None:
    import os
    import signal

    from robustperf.training import loop

    emit = loop._Trainer._emit

    def emit_then_signal(self, kind, metrics=None, model=None):  # a real SIGTERM to this process at step 1 of 2
        emit(self, kind, metrics, model)
        if kind == "step" and self.progress.step == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(loop._Trainer, "_emit", emit_then_signal)
    out = run_one(TINY, tmp_path)
    assert out["status"] == "interrupted" and "SIGTERM" in out["failure_reason"], out
    rd = RunDir(Path(out["run_dir"]))
    assert rd.read_record().status == "interrupted"  # not overwritten as failed
    assert not (rd.path / "failure.txt").exists()
    monkeypatch.setattr(loop._Trainer, "_emit", emit)
    again = run_one(TINY, tmp_path)
    assert again["status"] == "finished" and rd.read_record().status == "finished"
    assert any(r.get("event") == "resumed" and r["step"] == 1 for r in rd.read_metrics())


def test_a_run_held_by_another_process_is_left_alone_and_reported_locked(tmp_path: Path) -> None:
    """In a study a held run is not trained beside its owner: `run_one` says "locked"; `run-one` exits 75."""
    import json
    import subprocess

    from robustperf.sweep.manifest import write_manifest

    cfg = RunConfig.model_validate(TINY)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom robustperf.store.lock import RunLock\n"
                               "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
                               str(tmp_path / cfg.run_id)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        out = run_one(cfg, tmp_path)
        assert out["status"] == "locked" and f"is being trained by PID {holder.pid}" in out["failure_reason"]
        manifest = write_manifest(tmp_path / "m" / "manifest.jsonl", run_one, [cfg.resolved()], tmp_path)
        cli = subprocess.run([sys.executable, "-m", "robustperf", "run-one", "--manifest", str(manifest), "--index", "0",
                              "--json"], capture_output=True, text=True)
        assert cli.returncode == 75 and json.loads(cli.stdout.strip().splitlines()[-1])["status"] == "locked"
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / cfg.run_id / "config.json").exists()  # nothing was written into the held run
    assert run_one(cfg, tmp_path)["status"] == "finished"  # once its holder is gone, it runs
