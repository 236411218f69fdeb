"""Attack success rate, seed aggregation, config validation and run ids."""

from __future__ import annotations

import pytest

from robustperf.config import ConfigError
from robustperf.llm.attack_config import AttackConfigError, GCGConfig, build_attack_config, matching_random_token
from robustperf.llm.config import load_llm_config
from robustperf.llm.cost import backward_flops, forward_flops, train_flops
from robustperf.llm.metrics import attack_success_rate, min_median_max


def test_asr_counts_only_initially_correct_examples():
    before = [True, True, True, False, False]
    after = [False, True, True, False, True]  # one flip; the two wrong-before examples do not count
    assert attack_success_rate(before, after) == pytest.approx(1 / 3)
    assert attack_success_rate([False, False], [False, False]) is None
    with pytest.raises(ValueError):
        attack_success_rate([True], [True, False])


def test_min_median_max_skips_missing():
    assert min_median_max([0.2, None, 0.6, 0.4]) == {"min": 0.2, "median": 0.4, "max": 0.6, "n": 3}
    assert min_median_max([None])["median"] is None


def test_flop_formulas_follow_the_paper():
    assert forward_flops(100, 1e6) == 2e8
    assert backward_flops(100, 1e6) == 4e8
    assert train_flops(100, 1e6) == 6e8


def test_paper_defaults_and_matching_budget():
    gcg = GCGConfig()
    assert (gcg.n_attack_tokens, gcg.n_iterations, gcg.n_candidates, gcg.top_k) == (10, 10, 128, 256)
    assert matching_random_token(gcg).n_queries == 1280


def test_attack_params_are_validated_and_filled():
    cfg = load_llm_config(None, ["attack.name=random_token", "attack.random_token.n_queries=64"])
    assert cfg.attack.params["n_queries"] == 64
    assert cfg.attack.params["n_attack_tokens"] == 10  # default filled in the resolved config
    assert cfg.resolved()["attack"]["gcg"]["top_k"] == 256
    with pytest.raises(ConfigError, match="n_iteration"):
        load_llm_config(None, ["attack.gcg.n_iteration=5"])


def test_random_token_budget_follows_gcg():
    cfg = load_llm_config(None, ["attack.name=random_token", "attack.gcg.n_candidates=32",
                                 "attack.gcg.n_iterations=5", "attack.gcg.n_attack_tokens=4"])
    assert cfg.attack.params["n_queries"] == 160  # B x T of the GCG it is compared with
    assert cfg.attack.params["n_attack_tokens"] == 4
    with pytest.raises(AttackConfigError, match=">= 1"):
        build_attack_config("gcg", {"top_k": 0})


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task:\n  n_trian: 10\n")
    with pytest.raises(ConfigError, match="task.n_trian"):
        load_llm_config(path)


def test_run_ids_per_seed_and_kind():
    cfg = load_llm_config(None, ["seeds=[0, 1, 2]"])
    singles = cfg.per_seed()
    assert [c.seed for c in singles] == [0, 1, 2]
    assert len({c.run_id("advtrain") for c in singles}) == 3
    a = singles[0]
    b = a.with_overrides(["attack.name=random_token"])
    assert a.run_id("finetune") == b.run_id("finetune")  # the fine-tuned model is shared across attacks
    assert a.run_id("advtrain") != b.run_id("advtrain")
    with pytest.raises(ConfigError, match="per_seed"):
        _ = cfg.seed
