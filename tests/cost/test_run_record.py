"""The fake meter drives the whole path from a training run to result.json's cost block."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from robustperf.config import RunConfig


def _train_fn():  # noqa: ANN202 - the training API is typed in its own module
    training = importlib.import_module("robustperf.training")
    if not hasattr(training, "train"):
        pytest.skip("robustperf.training.train is not there yet (training part in progress)")
    return training.train


def test_fake_meter_fills_the_record(tmp_path: Path) -> None:
    train = _train_fn()
    cfg = RunConfig().with_overrides(
        {
            "data.dataset": "digits",
            "data.n_train": 64,
            "data.n_test": 32,
            "data.batch_size": 32,
            "model.name": "tiny_cnn",
            "method.name": "pgd_at",
            "method.attack.n_steps": 2,
            "optim.epochs": 1,
            "eval.n_examples": 16,
            "eval.attack.n_steps": 2,
            "cost.energy_meter": "fake",
            "runtime.device": "cpu",
            "runtime.progress": False,
        }
    )
    try:
        run_dir = train(cfg, tmp_path)
    except ImportError as exc:  # training landed before the data/models parts it builds on
        pytest.skip(f"training cannot run yet: {exc}")
    record = run_dir.read_record()
    assert record is not None and record.status == "finished"
    cost = record.cost
    assert cost["energy_source"] == "fake"
    assert cost["seconds"] > 0 and cost["energy_joules"] > 0
    # Fake meter: constant watts x seconds; the derived figures follow the sourced constants.
    assert cost["energy_kwh"] == pytest.approx(cost["energy_joules"] / 3.6e6 * 1.58)
    assert cost["co2_kg"] == pytest.approx(cost["energy_kwh"] * 566.3 / 1000)
    assert cost["usd"] == pytest.approx(cost["energy_kwh"] * 0.12)
    assert cost["flops_per_sample"] > 0
    assert cost["train_flops"] == pytest.approx(cost["flops_per_sample"] * record.final["samples_seen"])
    assert "Strubell" in cost["constants"]["pue"]["source"]


def test_the_loop_prices_the_methods_own_iteration_and_survives_a_counter_failure(tmp_path: Path, monkeypatch,
                                                                                   caplog) -> None:
    """The record's FLOPs are the count of `flop_iteration` (the method's real step); if counting breaks
    after training, the run is still finished, with null FLOPs and a warning saying why."""
    import logging

    from robustperf.cost.accounting import train_flops_per_sample
    from robustperf.models import load_run_model
    from robustperf.training import methods, train

    cfg = RunConfig().with_overrides({
        "data.dataset": "digits", "data.n_train": 64, "data.batch_size": 32, "model.name": "tiny_cnn",
        "method.name": "trades", "method.attack.n_steps": 2, "optim.epochs": 1, "eval.n_examples": 16,
        "eval.attack.n_steps": 2, "cost.energy_meter": "none", "runtime.device": "cpu", "runtime.progress": False,
    })  # fmt: skip
    record = train(cfg, tmp_path / "ok").read_record()
    model, _ = load_run_model(tmp_path / "ok" / cfg.run_id)
    expected = train_flops_per_sample(model, cfg, methods.flop_iteration(cfg.method), input_shape=(1, 8, 8))
    assert record.cost["flops_per_sample"] == expected.per_sample

    def broken(method_cfg):  # noqa: ANN001, ANN202
        def iteration(*_):  # noqa: ANN002, ANN202
            raise RuntimeError("cannot run on the meta device")

        return iteration

    monkeypatch.setattr(methods, "flop_iteration", broken)
    with caplog.at_level(logging.WARNING):
        record = train(cfg, tmp_path / "broken").read_record()
    assert record.status == "finished" and record.cost["flops_per_sample"] is None
    assert "cannot run on the meta device" in caplog.text


def test_stated_watts_estimate_is_labelled_in_the_record(tmp_path: Path) -> None:
    train = _train_fn()
    cfg = RunConfig().with_overrides(
        {
            "data.dataset": "digits", "data.n_train": 32, "data.n_test": 16, "data.batch_size": 16,
            "model.name": "tiny_cnn", "method.name": "standard", "optim.epochs": 1, "eval.n_examples": 8,
            "eval.attack.n_steps": 1, "cost.energy_meter": "estimate", "cost.watts": 50.0,
            "runtime.device": "cpu", "runtime.progress": False,
        }
    )
    cost = train(cfg, tmp_path).read_record().cost
    assert cost["energy_method"] == "estimated"
    assert cost["energy_source"] == "estimate: 50 W = stated power 50 W (cost.watts / --watts)"
    assert cost["energy_joules"] == pytest.approx(50.0 * cost["seconds"], rel=0.05)


def test_default_auto_meter_fills_energy_on_a_cpu(tmp_path: Path) -> None:
    """The default meter ("auto") gives every run an energy figure, metered or labelled as an estimate."""
    train = _train_fn()
    cfg = RunConfig().with_overrides(
        {
            "data.dataset": "digits", "data.n_train": 32, "data.n_test": 16, "data.batch_size": 16,
            "model.name": "tiny_cnn", "method.name": "standard", "optim.epochs": 1, "eval.n_examples": 8,
            "eval.attack.n_steps": 1, "runtime.device": "cpu", "runtime.progress": False,
        }
    )
    assert cfg.cost.energy_meter == "auto"
    cost = train(cfg, tmp_path).read_record().cost
    assert cost["energy_method"] in {"metered", "estimated"}
    assert cost["energy_kwh"] > 0 and cost["co2_kg"] > 0 and cost["usd"] > 0
    if cost["energy_method"] == "estimated":  # no GPU and no readable RAPL counter, as on this VM
        assert cost["energy_source"].startswith("estimate: ")
