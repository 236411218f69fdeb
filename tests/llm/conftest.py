"""Shared tiny fixtures for the LLM tests: one BPE tokenizer and one random-init 2-layer GPT-NeoX (CPU)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tokenizer():
    from robustperf.llm.tokenizer import build_bpe_tokenizer

    return build_bpe_tokenizer(512)


@pytest.fixture()
def tiny_model(tokenizer):
    from robustperf.llm.models import random_neox_classifier

    torch.set_num_threads(1)
    return random_neox_classifier("neox-tiny", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                  max_length=256, seed=0).eval()
