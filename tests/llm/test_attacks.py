"""GCG and RandomToken on a tiny random-init GPT-NeoX (CPU, seconds)."""

from __future__ import annotations

import pytest
import torch

from robustperf.llm.attacks import LLM_ATTACKS, create_llm_attack, make_prompts
from robustperf.llm.scoring import classify
from robustperf.llm.tasks import password_match, word_length
from robustperf.llm.tokenizer import encode
from robustperf.registry import RegistryError

GCG_SMALL = {"n_attack_tokens": 4, "n_iterations": 4, "n_candidates": 16, "top_k": 32}


@pytest.fixture(scope="module")
def prompts_and_examples(tokenizer):
    examples = password_match(3, seed=0)
    return make_prompts(tokenizer, examples), examples


def test_gcg_lowers_target_loss_and_respects_budget(tiny_model, tokenizer, prompts_and_examples):
    prompts, _ = prompts_and_examples
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    result = create_llm_attack("gcg", **GCG_SMALL).perturb(tiny_model, tokenizer, prompts, seed=0)
    for p, ids, block, losses in zip(prompts, result.ids, result.blocks, result.losses, strict=True):
        assert len(losses) == GCG_SMALL["n_iterations"] + 1
        assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))  # best-so-far never rises
        assert losses[-1] < losses[0]  # the attack made progress toward the wrong label
        assert len(block) == GCG_SMALL["n_attack_tokens"]
        # insertion point: the block sits between the prefix and PasswordMatch's closing separator
        assert ids == [*p.prefix, *block, *p.closing]
        assert tokenizer.decode(list(p.closing)) == "\n---\n"
    assert result.n_backward == [GCG_SMALL["n_iterations"]] * 3
    max_forward = 1 + GCG_SMALL["n_iterations"] * (1 + GCG_SMALL["n_candidates"])
    assert all(0 < n <= max_forward for n in result.n_forward)
    assert result.flops > 0
    # the attack never touches the weights
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())


def test_gcg_success_matches_the_models_prediction(tiny_model, tokenizer, prompts_and_examples):
    prompts, _ = prompts_and_examples
    result = create_llm_attack("gcg", **GCG_SMALL).perturb(tiny_model, tokenizer, prompts, seed=1)
    pred = classify(tiny_model, result.ids, pad_id=tokenizer.pad_token_id, device=torch.device("cpu")).argmax(-1)
    assert [int(y) != p.label for y, p in zip(pred, prompts, strict=True)] == result.success


def test_prefix_cache_matches_full_forward(tiny_model, tokenizer, prompts_and_examples):
    prompts, _ = prompts_and_examples
    fast = create_llm_attack("gcg", **GCG_SMALL, prefix_cache=True).perturb(tiny_model, tokenizer, prompts, seed=2)
    plain = create_llm_attack("gcg", **GCG_SMALL, prefix_cache=False, candidate_batch_size=5).perturb(
        tiny_model, tokenizer, prompts, seed=2)
    assert fast.blocks == plain.blocks
    for a, b in zip(fast.losses, plain.losses, strict=True):
        assert a == pytest.approx(b, abs=1e-4)


def test_gcg_blocks_survive_retokenization(tiny_model, tokenizer, prompts_and_examples):
    prompts, _ = prompts_and_examples
    result = create_llm_attack("gcg", **GCG_SMALL).perturb(tiny_model, tokenizer, prompts, seed=3)
    for block in result.blocks:
        assert encode(tokenizer, tokenizer.decode(block)) == block


def test_end_insertion_appends_after_the_whole_prompt(tiny_model, tokenizer):
    examples = password_match(2, seed=5)
    prompts = make_prompts(tokenizer, examples, insertion="end")
    result = create_llm_attack("gcg", **GCG_SMALL, insertion="end").perturb(tiny_model, tokenizer, prompts)
    for ex, ids, block in zip(examples, result.ids, result.blocks, strict=True):
        assert ids[: len(ids) - len(block)] == encode(tokenizer, ex.text)


def _constant_model(model):
    # a zero head predicts class 0 for every input: label-0 prompts can never be flipped,
    # label-1 prompts are wrong before any attack
    with torch.no_grad():
        model.score.weight.zero_()
    return model


def test_random_token_uses_exactly_its_query_budget(tiny_model, tokenizer):
    model = _constant_model(tiny_model)
    examples = [e for e in word_length(20, seed=0) if e.label == 0][:2]
    prompts = make_prompts(tokenizer, examples)
    attack = create_llm_attack("random_token", n_attack_tokens=3, n_queries=50, batch_size=16)
    result = attack.perturb(model, tokenizer, prompts, seed=0)
    assert result.success == [False, False]
    assert result.n_queries == [50, 50]
    assert result.n_forward == [50, 50]  # the last batch is cut to the remaining budget
    assert all(len(b) == 3 for b in result.blocks)


def test_random_token_stops_at_first_success(tiny_model, tokenizer):
    model = _constant_model(tiny_model)
    examples = [e for e in word_length(20, seed=0) if e.label == 1][:1]
    result = create_llm_attack("random_token", n_queries=40, batch_size=8).perturb(
        model, tokenizer, make_prompts(tokenizer, examples))
    assert result.success == [True]
    assert result.n_queries == [1]


def test_random_token_can_flip_a_random_model(tiny_model, tokenizer):
    prompts = make_prompts(tokenizer, password_match(4, seed=1))
    result = create_llm_attack("random_token", n_attack_tokens=4, n_queries=64, batch_size=32).perturb(
        tiny_model, tokenizer, prompts, seed=0)
    for ok, q in zip(result.success, result.n_queries, strict=True):
        assert (q <= 64) if ok else (q == 64)


def test_registry_and_bad_parameters():
    assert LLM_ATTACKS.names() == ["gcg", "random_token"]
    with pytest.raises(RegistryError, match="random_token"):
        create_llm_attack("random_tokens")
    with pytest.raises(ValueError, match="n_iterations"):
        create_llm_attack("gcg", n_iteration=3)
