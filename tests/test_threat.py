"""One threat model: the frozen `ThreatModel`, parsed once from a config, the eps rule in one function, and
what ``eval.attack.eps`` means (issue 25, item 3)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from robustperf import threat
from robustperf.config import ConfigError, RunConfig, config_from_dict, load_config
from robustperf.store.robust import robust_accuracy
from robustperf.threat import LEGACY_EVAL_EPS, ThreatModel, asked_eval_eps, evaluation_eps

ROOT = Path(__file__).resolve().parents[1]
LEGACY_CONFIG = ROOT / "tests" / "fixtures" / "legacy_run" / "legacy-361d4f03516f" / "config.json"

# run ids and per-epoch evaluation (eps, step) of the shipped configs, measured before the threat model existed
SHIPPED = {
    "cifar10_co_fastat8.yaml": ("cifar10-co-fastat8-b5062a54d3a3", 0.03137254901960784, 0.00784313725490196),
    "cifar10_co_fgsm.yaml": ("cifar10-co-fgsm-bede2b82fb77", 0.06274509803921569, 0.01568627450980392),
    "cifar10_co_nfgsm.yaml": ("cifar10-co-nfgsm-240cc2159c42", 0.06274509803921569, 0.01568627450980392),
    "cifar10_pgd_at_resnet18.yaml": ("cifar10-pgd-at-resnet18-7d24ad1322c0", 0.03137254901960784, 0.00784313725490196),
    "cifar10_small.yaml": ("cifar10-small-85ecffdcd405", 0.03137254901960784, 0.00784313725490196),
    "cifar10_trades_wrn28_10.yaml": ("cifar10-trades-wrn28-10-1566f5c4a6b8", 0.03137254901960784, 0.00784313725490196),
    "quickstart.yaml": ("quickstart-1244fd5469be", 0.1, 0.025),
}


def test_threat_model_is_frozen_and_checked() -> None:
    t = ThreatModel(eps=0.1, step_size=0.025)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.eps = 0.2  # type: ignore[misc]
    with pytest.raises(ValueError, match="norm"):
        ThreatModel(norm="l1")
    with pytest.raises(ValueError, match="eps >= 0"):
        ThreatModel(eps=-0.1)
    moved = t.at_eps(0.2)
    assert (moved.eps, moved.step_size, t.eps) == (0.2, pytest.approx(0.05), 0.1)  # the step scales, t unchanged


def test_config_is_parsed_once_into_its_threat_models() -> None:
    cfg = RunConfig().with_overrides(["method.attack.eps=0.1", "method.attack.n_steps=3", "method.attack.norm=linf"])
    assert cfg.threat is cfg.threat and cfg.eval_threat is cfg.eval_threat  # computed at validation, not per call
    assert cfg.threat == ThreatModel(norm="linf", eps=0.1, step_size=2 / 255, n_steps=3, loss="ce")
    assert cfg.eval_threat == ThreatModel(norm="linf", eps=0.1, step_size=0.025, n_steps=40, loss="cw")
    assert cfg.eval_threat_at(0.2).eps == 0.2  # --eps
    trades = RunConfig().with_overrides({"eval.attack.loss": "kl"})
    assert trades.eval_threat.loss == "cw"  # the KL needs TRADES' clean target


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_keep_run_ids_and_evaluation(name: str) -> None:
    from robustperf.training.evaluation import eval_settings

    run_id, eps, step = SHIPPED[name]
    cfg = load_config(ROOT / "configs" / name)
    settings = eval_settings(cfg)
    assert (cfg.run_id, settings.eps, settings.step_size) == (run_id, eps, step)  # bit-identical, not approx


def test_legacy_record_keeps_its_meaning_and_run_id() -> None:
    """Saved configs carry eval.attack.eps = 8/255 (the old default) while training at 0.1: the training eps."""
    data = json.loads(LEGACY_CONFIG.read_text())
    assert data["eval"]["attack"]["eps"] == LEGACY_EVAL_EPS and data["method"]["attack"]["eps"] == 0.1
    cfg = config_from_dict(data)
    assert cfg.run_id == "legacy-361d4f03516f"
    assert (cfg.eval_threat.eps, cfg.eval_threat.step_size) == (0.1, 0.025)


def test_eval_attack_eps_means_what_it_says() -> None:
    cfg = RunConfig().with_overrides(["method.attack.eps=0.1", "eval.attack.eps=16/255", "eval.attack.step_size=4/255"])
    assert cfg.eval_threat.eps == 16 / 255 and cfg.eval_threat.step_size == pytest.approx(4 / 255)
    assert cfg.eval_threat_at(None) == cfg.eval_threat
    # its value at the training eps is that eps, with that step (as before: co_fgsm writes it so)
    same = RunConfig().with_overrides(["method.attack.eps=0.1", "eval.attack.eps=0.1", "eval.attack.step_size=0.05"])
    assert (same.eval_threat.eps, same.eval_threat.step_size) == (0.1, 0.05)


def test_eval_attack_eps_at_its_old_default_is_refused_where_it_would_not_be_heeded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"eval.attack.eps=8/255 .* `robustperf evaluate RUN_DIR --eps 8/255`"):
        RunConfig().with_overrides(["method.attack.eps=0.1", "eval.attack.eps=8/255"])
    path = tmp_path / "run.yaml"
    path.write_text("method: {attack: {eps: 0.1}}\neval: {attack: {eps: 8/255}}\n")
    with pytest.raises(ConfigError, match="remove eval.attack.eps"):
        load_config(path)
    with pytest.raises(ConfigError, match="remove eval.attack.eps"):
        load_config(None, {"method.attack.eps": 0.1, "eval.attack.eps": 8 / 255})
    # at a training eps of 8/255 the old default is what it says: accepted
    assert load_config(None, ["eval.attack.eps=8/255"]).eval_threat.eps == 8 / 255
    assert load_config(None, ["method.attack.eps=0.1"]).eval_threat.eps == 0.1  # not written: the training eps


def test_the_eps_rule_is_one_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything that picks an evaluation radius asks `threat.evaluation_eps`: replacing it moves them all."""
    assert evaluation_eps(0.1) == 0.1 and evaluation_eps(0.1, 0.2) == 0.2
    assert asked_eval_eps(LEGACY_EVAL_EPS) is None and asked_eval_eps(None) is None and asked_eval_eps(0.2) == 0.2
    monkeypatch.setattr(threat, "evaluation_eps", lambda training_eps, asked=None: 0.3)
    cfg = RunConfig().with_overrides(["method.attack.eps=0.1"])
    assert cfg.eval_threat.eps == 0.3 and cfg.eval_threat_at(0.2).eps == 0.3
    row = {"final.robust_acc": 0.5, "config.method.attack.eps": 0.1, "config.eval.attack.eps": LEGACY_EVAL_EPS}
    assert robust_accuracy(row).eps == 0.3


def test_robust_accuracy_of_a_training_evaluation_names_the_eps_it_used() -> None:
    row = {"final.robust_acc": 0.5, "config.method.attack.eps": 0.1, "config.eval.attack.eps": LEGACY_EVAL_EPS}
    assert robust_accuracy(row).eps == 0.1
    assert robust_accuracy({**row, "config.eval.attack.eps": 0.2}).eps == 0.2


def test_a_study_point_that_writes_the_old_default_is_refused() -> None:
    from robustperf.sweep.study import StudyError, expand, study_from_dict

    base = {"method": {"attack": {"eps": 0.1}}}
    ok = study_from_dict({"name": "s", "base": base, "grid": {"optim.lr": [0.1]}})
    assert expand(ok)[0].eval_threat.eps == 0.1
    bad = study_from_dict({"name": "s", "base": base, "grid": {"eval.attack.eps": ["8/255"]}})
    with pytest.raises(StudyError, match="remove eval.attack.eps"):
        expand(bad)


def test_one_reader_of_eps_for_configs_and_the_command_line() -> None:
    from robustperf.cli.evaluate import parse_eps
    from robustperf.threat import read_eps

    assert read_eps("8 / 255") == 8 / 255 and read_eps("0.1") == 0.1
    assert parse_eps("8/255") == 8 / 255 == RunConfig().with_overrides(["method.attack.eps=8/255"]).threat.eps
    with pytest.raises(ValueError):
        read_eps("eight")


def test_a_saved_config_keeps_the_old_meaning_but_an_override_on_it_is_refused(tmp_path: Path) -> None:
    """`robustperf train runs/X/config.json` works (a saved config carries 8/255 at any training eps); a
    ``--set eval.attack.eps=8/255`` on top of it is the user's own word and is refused."""
    cfg = load_config(LEGACY_CONFIG)
    assert cfg.run_id == "legacy-361d4f03516f" and cfg.eval_threat.eps == 0.1
    copy = tmp_path / "c.json"
    copy.write_text(json.dumps(RunConfig().with_overrides(["method.attack.eps=0.1"]).resolved()))
    assert load_config(copy).eval_threat.eps == 0.1
    with pytest.raises(ConfigError, match="remove eval.attack.eps"):
        load_config(copy, ["eval.attack.eps=8/255"])


def test_an_eval_attack_norm_other_than_the_training_norm_is_refused(tmp_path: Path) -> None:
    """The per-epoch evaluation runs in the training norm: a written eval.attack.norm that differs would be
    ignored, so it is refused with the fix; the same norm, or none written, or a saved config, is accepted."""
    with pytest.raises(ConfigError, match=r"eval.attack.norm=l2 is not used.*--norm l2"):
        RunConfig().with_overrides(["eval.attack.norm=l2"])
    path = tmp_path / "run.yaml"
    path.write_text("method: {attack: {norm: l2, eps: 0.5, step_size: 0.1}}\neval: {attack: {norm: linf}}\n")
    with pytest.raises(ConfigError, match="remove eval.attack.norm"):
        load_config(path)
    l2 = load_config(None, ["method.attack.norm=l2", "method.attack.eps=0.5", "method.attack.step_size=0.1"])
    assert l2.eval_threat.norm == "l2"  # the default linf of eval.attack.norm was not written: not refused
    assert load_config(None, ["method.attack.norm=l2", "method.attack.eps=0.5", "method.attack.step_size=0.1",
                              "eval.attack.norm=l2"]).eval_threat.norm == "l2"
    saved = tmp_path / "config.json"  # a run's config.json carries eval.attack.norm=linf beside an l2 run
    saved.write_text(json.dumps(l2.resolved()))
    assert load_config(saved).run_id == l2.run_id
