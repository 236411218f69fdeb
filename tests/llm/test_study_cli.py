"""Study aggregation (min/median/max over seeds), transfer evaluation and the `robustperf llm` CLI."""

from __future__ import annotations

import concurrent.futures as cf
import csv
import json

import pytest
import yaml
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.config import ConfigError
from robustperf.llm.study import StudyConfig, asr_vs_round, load_study, run_study
from robustperf.sweep.executors import Executor

BASE = {
    "model": {"name": "neox-tiny", "tokenizer_vocab_size": 512, "max_length": 128},
    "task": {"n_train": 16, "n_val": 6},
    "attack": {"gcg": {"n_attack_tokens": 2, "n_iterations": 1, "n_candidates": 4, "top_k": 8}},
    "training": {"lr": 1e-3, "batch_size": 8},
    "rounds": {"n_rounds": 1, "n_attack_train": 4, "n_attack_val": 6},
    "runtime": {"device": "cpu", "progress": False},
    "cost": {"energy_meter": "none"},
}


def _row(seed: int, rnd: int, asr: float | None) -> dict:
    return {"model": "m", "n_params": 10, "task": "t", "attack": "gcg", "eval_attack": "gcg", "seed": seed,
            "round": rnd, "asr": asr, "clean_acc": 0.5, "cum_flops": 1.0 + rnd}


def test_asr_vs_round_aggregates_over_seeds():
    rows = [_row(0, 0, 0.9), _row(1, 0, 0.5), _row(2, 0, 0.7), _row(0, 1, 0.2), _row(1, 1, None)]
    table = asr_vs_round(rows)
    assert [(t["round"], t["asr_min"], t["asr_median"], t["asr_max"], t["n_seeds"]) for t in table] == [
        (0, 0.5, 0.7, 0.9, 3), (1, 0.2, 0.2, 0.2, 2)]


def test_study_grid_is_validated_before_any_work(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "grid": {"attack.name": ["gcg", "pgd"]}}))
    with pytest.raises(ConfigError, match="attack.name"):
        load_study(path)


class InProcess(Executor):
    """An executor that runs each payload in this process, one after the other (fast: no worker start-up)."""

    name = "in_process"

    def submit(self, fn, config, runs_dir):
        fut: cf.Future = cf.Future()
        fut.set_result(fn(config, runs_dir))
        return fut


def test_study_writes_the_asr_table(tmp_path):
    study = StudyConfig(name="mini", base={**BASE, "seeds": [0, 1]}, grid={"attack.name": ["random_token"]})
    _, table_path, execution = run_study(study, tmp_path, executor=InProcess())
    assert [r["status"] for r in execution.results] == ["finished", "finished"]
    with table_path.open() as f:
        table = list(csv.DictReader(f))
    assert [int(r["round"]) for r in table] == [0, 1]
    assert all(int(r["n_seeds"]) == 2 and r["attack"] == "random_token" for r in table)
    assert len([p for p in tmp_path.iterdir() if "-advtrain-" in p.name]) == 2


def test_cli_advtrain_with_transfer_attack(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**BASE, "rounds": {**BASE["rounds"], "n_rounds": 0}}))
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["llm", "advtrain", str(cfg), "--runs-dir", str(runs),
                                      "--set", "rounds.eval_attack.name=random_token"])
    assert result.exit_code == 0, result.output
    from robustperf.store import load_index

    rows = [r for r in load_index(runs) if "-advtrain-" in r["run_id"]]
    assert len(rows) == 1
    assert rows[0]["final.attack"] == "gcg" and rows[0]["final.eval_attack"] == "random_token"


def test_cli_bad_key_names_it(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(BASE))
    result = CliRunner().invoke(app, ["llm", "finetune", str(cfg), "--set", "training.learning_rate=1"])
    assert result.exit_code == 2
    assert "training.learning_rate" in result.output


def test_study_on_a_manifest_writes_scheduler_arrays_that_run_one_index(tmp_path):
    from robustperf.llm.config import llm_config_from_dict
    from robustperf.sweep.manifest import read_manifest, run_manifest_index

    study = StudyConfig(name="mini", base={**BASE, "seeds": [0]}, grid={"attack.name": ["random_token", "gcg"]},
                        executor={"name": "manifest", "submit": False})
    run_study(study, tmp_path)  # plan only: nothing runs
    finetune = tmp_path / "manifests" / "mini-finetune" / "manifest.jsonl"
    advtrain = read_manifest(tmp_path / "manifests" / "mini-advtrain" / "manifest.jsonl")
    assert len(read_manifest(finetune)) == 1  # both attacks share one fine-tuned model
    assert [e["fn"] for e in advtrain] == ["robustperf.llm.study:run_llm_one"] * 2
    cfg = llm_config_from_dict(advtrain[1]["config"]["config"])
    assert advtrain[1]["run_id"] == cfg.run_id("advtrain")
    assert (finetune.parent / "submit.sbatch").is_file()
    out = run_manifest_index(finetune, 0)  # what one array task does
    assert out["status"] == "finished" and run_manifest_index(finetune, 0)["status"] == "skipped"


@pytest.mark.slow
def test_study_runs_on_the_local_process_pool(tmp_path):
    study = StudyConfig(name="pool", base={**BASE, "seeds": [0, 1]}, grid={"attack.name": ["random_token"]},
                        executor={"name": "local", "workers": 2, "gpus_per_run": 0})
    _, table_path, execution = run_study(study, tmp_path)  # one fresh process per run (85 s on 2 busy cores)
    assert [r["status"] for r in execution.results] == ["finished", "finished"]
    with table_path.open() as f:
        assert [int(r["n_seeds"]) for r in csv.DictReader(f)] == [2, 2]


def test_a_run_held_by_another_process_is_reported_locked_not_failed(tmp_path) -> None:  # noqa: ANN001
    """run_llm_one on a run whose lock another process holds: status `locked`, nothing written."""
    import subprocess
    import sys
    import time

    from robustperf.llm.config import LLMConfig
    from robustperf.llm.study import run_llm_one
    from robustperf.store import RunDir

    cfg = LLMConfig()
    run_id = cfg.run_id("finetune")
    run_dir = RunDir.for_run(tmp_path, run_id).path
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from robustperf.store.lock import RunLock; "
        f"RunLock({str(run_dir)!r}).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        start = time.perf_counter()
        out = run_llm_one({"run_id": run_id, "command": "finetune", "config": cfg.resolved()}, str(tmp_path))
        assert out["status"] == "locked" and "is being" in out["failure_reason"]
        assert time.perf_counter() - start < 30  # refused at once, not trained
        assert not (run_dir / "result.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_variants_pair_settings_and_cross_the_grid(tmp_path):
    study = StudyConfig(name="v", base=BASE, grid={"attack.name": ["gcg", "random_token"]},
                        variants=[{"model.name": "neox-tiny", "training.epochs": 1},
                                  {"model.name": "neox-small", "training.epochs": 3}])
    pairs = [(c.model.name, c.training.epochs, c.attack.name) for c in study.configs()]
    assert pairs == [("neox-tiny", 1, "gcg"), ("neox-tiny", 1, "random_token"),
                     ("neox-small", 3, "gcg"), ("neox-small", 3, "random_token")]


def test_study_writes_trends_and_the_cli_draws_or_explains_the_figures(tmp_path):
    base = {**BASE, "seeds": [0, 1], "task": {"n_train": 16, "n_val": 24},
            "attack": {**BASE["attack"], "random_token": {"insertion": "end"}}}  # every prompt attackable
    study = StudyConfig(name="mini", base=base, grid={"attack.name": ["random_token"]})
    long_path, table_path, _ = run_study(study, tmp_path, executor=InProcess())
    trends = json.loads((tmp_path / "mini_trends.json").read_text())
    assert trends["machine"] and trends["trends"][0]["attack"] == "random_token"
    assert "seed spread" in (tmp_path / "mini_trends.md").read_text()
    from robustperf.cli.llm import _study_figures

    _study_figures(long_path, tmp_path, "mini")
    assert (tmp_path / "mini_asr_vs_round.png").is_file()


def test_a_variant_that_repeats_a_grid_point_runs_once(tmp_path):
    study = StudyConfig(name="dup", base=BASE, grid={"attack.name": ["random_token"]},
                        variants=[{"model.name": "neox-tiny"}, {"model.name": "neox-tiny"}])
    _, _, execution = run_study(study, tmp_path, executor=InProcess())
    assert [r["status"] for r in execution.results] == ["finished"]


def test_an_llm_payload_and_an_image_config_run_through_one_entry_runner(tmp_path) -> None:  # noqa: ANN001
    """run_llm_one and run_one share `run_entry`: the same summary keys and status words, finished then skipped,
    and a failure recorded (with its traceback) the same way for both engines."""
    import sys
    from pathlib import Path

    from robustperf.llm.config import llm_config_from_dict
    from robustperf.llm.study import run_llm_one
    from robustperf.store import RunDir
    from robustperf.sweep.run import SUMMARY_KEYS, run_one

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sweep"))
    from sweep_targets import TINY

    cfg = llm_config_from_dict(BASE)
    llm = {"run_id": cfg.run_id("finetune"), "command": "finetune", "config": cfg.resolved()}
    outs = [run_llm_one(llm, str(tmp_path)), run_one(TINY, tmp_path)]
    assert [tuple(sorted(o)) for o in outs] == [tuple(sorted(SUMMARY_KEYS))] * 2
    assert [o["status"] for o in outs] == ["finished", "finished"]
    again = [run_llm_one(llm, str(tmp_path)), run_one(TINY, tmp_path)]
    assert [tuple(sorted(o)) for o in again] == [tuple(sorted(SUMMARY_KEYS))] * 2
    assert [o["status"] for o in again] == ["skipped", "skipped"]

    broken_llm = {"run_id": "llm-broken", "command": "finetune", "config": {**cfg.resolved(), "seeds": "x"}}
    broken_image = {**TINY, "data": {"dataset": "cifar10", "root": str(tmp_path / "no-cifar-here")}}
    failed = [run_llm_one(broken_llm, str(tmp_path)), run_one(broken_image, tmp_path)]
    assert [tuple(sorted(o)) for o in failed] == [tuple(sorted(SUMMARY_KEYS))] * 2
    for out in failed:
        rd = RunDir(Path(out["run_dir"]))
        assert out["status"] == "failed" and rd.read_record().failure_reason == out["failure_reason"]
        assert (rd.path / "failure.txt").read_text().startswith("Traceback")
