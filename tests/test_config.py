"""RunConfig: YAML load, overrides, round-trip of the resolved config, errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustperf.config import ConfigError, RunConfig, apply_overrides, config_from_dict, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["quickstart.yaml", "cifar10_trades_wrn28_10.yaml", "cifar10_pgd_at_resnet18.yaml"])
def test_example_configs_load_and_round_trip(name: str) -> None:
    cfg = load_config(CONFIGS / name)
    resolved = cfg.resolved()
    again = config_from_dict(json.loads(json.dumps(resolved)))
    assert again == cfg
    assert again.run_id == cfg.run_id
    assert again.resolved() == resolved


def test_bartoldson_recipe_values() -> None:
    cfg = load_config(CONFIGS / "cifar10_trades_wrn28_10.yaml")
    assert cfg.method.name == "trades" and cfg.method.beta == 5.0 and cfg.method.label_smoothing == 0.1
    assert cfg.method.attack.eps == pytest.approx(8 / 255) and cfg.method.attack.step_size == pytest.approx(2 / 255)
    assert cfg.method.attack.n_steps == 10 and cfg.optim.ema_decay == 0.995
    assert (cfg.data.batch_size, cfg.optim.lr, cfg.optim.nesterov) == (1024, 0.3, True)
    assert cfg.model.kwargs == {"depth": 28, "width": 10, "activation": "silu"}


def test_defaults_are_filled_in() -> None:
    resolved = RunConfig().resolved()
    assert resolved["eval"]["attack"]["n_steps"] == 40 and resolved["eval"]["attack"]["loss"] == "cw"
    assert set(resolved) == {"name", "data", "model", "method", "optim", "eval", "cost", "runtime", "tracking"}


def test_overrides_change_values_and_run_id() -> None:
    base = RunConfig()
    changed = base.with_overrides(["optim.lr=0.05", "method.attack.eps=4/255", "model.kwargs.width=8"])
    assert changed.optim.lr == 0.05
    assert changed.method.attack.eps == pytest.approx(4 / 255)
    assert changed.model.kwargs == {"width": 8}
    assert changed.run_id != base.run_id
    assert base.with_overrides({"runtime.progress": False}).run_id == base.run_id  # display-only field


def test_unknown_key_is_named(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(path)
    with pytest.raises(ConfigError, match="method.attack.epsilon"):
        RunConfig().with_overrides(["method.attack.epsilon=0.1"])


def test_bad_values_and_inputs_name_the_fix(tmp_path) -> None:
    with pytest.raises(ConfigError, match="optim.lr"):
        RunConfig().with_overrides(["optim.lr=-1"])
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="synthetic_path"):
        RunConfig().with_overrides(["data.synthetic_fraction=0.5"])


def test_ema_warmup_default_keeps_run_ids_of_runs_without_ema() -> None:
    """The warm-up default became None (issue 15): runs without EMA keep their ids, EMA runs get new ones."""
    assert RunConfig().run_id == RunConfig().with_overrides({"optim.ema_warmup_steps": 0}).run_id
    ema = RunConfig().with_overrides({"optim.ema_decay": 0.995})
    assert ema.run_id != ema.with_overrides({"optim.ema_warmup_steps": 0}).run_id
