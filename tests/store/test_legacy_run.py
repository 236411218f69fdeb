"""A run directory written before the RunSession refactor (tests/fixtures/legacy_run, by commit 577de11)
still loads and resumes: same record shape, same checkpoint format, same final weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from robustperf.config import config_from_dict
from robustperf.models import load_run_model
from robustperf.store import CostRecord, Metrics, RunDir

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_run"
RUN_ID = "legacy-361d4f03516f"


@pytest.fixture
def legacy(tmp_path: Path) -> RunDir:
    shutil.copytree(FIXTURE / RUN_ID, tmp_path / RUN_ID)
    return RunDir(tmp_path / RUN_ID)


def test_legacy_record_reads_into_typed_blocks_and_writes_back_the_same_json(legacy: RunDir) -> None:
    record = legacy.read_record()
    assert record is not None and record.status == "interrupted"
    assert isinstance(record.final, Metrics) and isinstance(record.cost, CostRecord)
    assert record.best.clean_acc == record.best["clean_acc"] == pytest.approx(0.1875)
    assert json.loads(json.dumps(record.to_dict())) == json.loads(legacy.result_path.read_text())
    expected = json.loads((FIXTURE / "expected_result.json").read_text())
    cost = CostRecord.from_dict(expected["cost"])
    assert cost.to_dict() == expected["cost"]  # null values stay, key order and all
    assert cost.energy_source == "fake" and cost.constants is not None


def test_legacy_run_loads_its_models(legacy: RunDir) -> None:
    model, cfg = load_run_model(legacy, which="best")
    assert cfg.run_id == RUN_ID  # the config of the old run resolves to the same run id today
    x = torch.rand(4, 1, 8, 8)
    assert model(x).shape == (4, 10)
    last, _ = load_run_model(legacy, which="last")  # EMA weights of the step-5 checkpoint
    assert not torch.equal(last(x), model(x))


NEW_METRICS = {"adv_ce"}  # evaluation metrics added after the fixture was written


def test_legacy_run_resumes_to_what_the_old_code_reached(legacy: RunDir) -> None:
    from robustperf.training import train

    torch.set_num_threads(1)
    cfg = config_from_dict(legacy.read_config())
    rd = train(cfg, legacy.path.parent)
    assert rd.path == legacy.path  # resumed in place, not started anew under another id
    record = rd.read_record()
    expected = json.loads((FIXTURE / "expected_result.json").read_text())
    assert record.status == "finished"
    assert record.provenance["resumed"] is True
    # every number the old code reached is reached again; metrics added since (adv_ce) may come on top
    for block, old in (("final", expected["final"]), ("best", expected["best"])):
        new = getattr(record, block).to_dict()
        assert {k: new[k] for k in old} == old, block
        assert set(new) - set(old) <= NEW_METRICS, block
    for key in ("train_flops", "flops_per_sample", "samples_seen", "eval_flops", "total_flops"):
        assert record.cost[key] == pytest.approx(expected["cost"][key], rel=1e-12), key
    weights = torch.load(FIXTURE / "expected_weights.pt", weights_only=True)
    last = torch.load(rd.checkpoints / "last.pt", weights_only=True)
    for key, value in weights["model"].items():
        torch.testing.assert_close(last["model"][key], value, rtol=0, atol=1e-6)
    for key, value in weights["ema"].items():
        torch.testing.assert_close(last["ema"]["module"][key], value, rtol=0, atol=1e-6)
    resumed = [r for r in rd.read_metrics() if r.get("event") == "resumed"]
    assert [r["step"] for r in resumed] == [5]
