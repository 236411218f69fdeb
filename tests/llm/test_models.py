"""Classifiers: random-init shapes and loading a local Hugging Face directory with Pythia conventions."""

from __future__ import annotations

import pytest
import torch

from robustperf.llm.models import NEOX_SHAPES, ModelLoadError, count_parameters, load_local_classifier, neox_config
from robustperf.llm.scoring import classify
from robustperf.llm.tokenizer import encode


def test_shapes_grow_and_unknown_names_list_alternatives(tokenizer):
    sizes = [count_parameters(_model(n, tokenizer)) for n in ("neox-tiny", "neox-small", "neox-medium")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert neox_config("pythia-1b", vocab_size=50304, pad_token_id=0).hidden_size == 2048
    with pytest.raises(ModelLoadError, match="pythia-70m"):
        neox_config("pythia-71m", vocab_size=10, pad_token_id=0)
    assert "pythia-410m" in NEOX_SHAPES


def _model(name, tokenizer):
    from robustperf.llm.models import random_neox_classifier

    return random_neox_classifier(name, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                  max_length=64)


def test_tokenizer_follows_pythia_conventions(tokenizer):
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.padding_side == "right"


def test_right_padding_does_not_change_logits(tiny_model, tokenizer):
    short, long = encode(tokenizer, "alpha beta"), encode(tokenizer, "gamma delta epsilon zeta eta theta")
    cpu = torch.device("cpu")
    alone = classify(tiny_model, [short], pad_id=tokenizer.pad_token_id, device=cpu)
    padded = classify(tiny_model, [short, long], pad_id=tokenizer.pad_token_id, device=cpu)[:1]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_local_directory_round_trip(tmp_path, tiny_model, tokenizer):
    tiny_model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, tok = load_local_classifier(tmp_path)
    assert tok.pad_token_id == tok.eos_token_id and tok.padding_side == "right"
    ids = encode(tok, "hello world")
    cpu = torch.device("cpu")
    got = classify(model.eval(), [ids], pad_id=tok.pad_token_id, device=cpu)
    assert torch.allclose(got, classify(tiny_model, [ids], pad_id=tok.pad_token_id, device=cpu), atol=1e-5)
    with pytest.raises(ModelLoadError, match="config.json"):
        load_local_classifier(tmp_path / "missing")
