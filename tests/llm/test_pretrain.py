"""Mini Pythia suite: corpus, Pythia-style checkpoint steps, a short pretraining run, fine-tuning from it."""

from __future__ import annotations

import math

import pytest
import torch

from robustperf.config import ConfigError
from robustperf.llm.pretrain import (
    PretrainConfig,
    generated_documents,
    load_pretrain_config,
    lr_at,
    pretrain_suite,
)


def test_checkpoint_steps_follow_pythia():
    cfg = PretrainConfig(n_tokens=16 * 128 * 2500, checkpoint_every=1000)
    assert cfg.n_steps == 2500
    assert cfg.checkpoint_steps() == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 2500]


def test_schedule_warms_up_then_decays_to_a_tenth():
    cfg = PretrainConfig(n_tokens=16 * 128 * 100, warmup_steps=10, lr=1e-3)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-4)
    assert lr_at(50, cfg) < lr_at(20, cfg)


def test_generated_corpus_is_seeded_and_repeats_spans():
    a = generated_documents(5, doc_words=60, seed=3)
    assert a == generated_documents(5, doc_words=60, seed=3)
    assert a != generated_documents(5, doc_words=60, seed=4)
    words = a[0].replace('"', " ").replace(",", " ").replace(".", " ").replace(":", " ").split()
    assert len(set(words)) < len(words)  # words recur within a document


def test_bad_config_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="unknown sizes"):
        load_pretrain_config(None, ["sizes=[neox-huge]"])
    with pytest.raises(ConfigError, match="corpus.paths"):
        load_pretrain_config(None, ["corpus.source=files"])


def test_pretrain_then_finetune_from_its_checkpoint(tmp_path):
    torch.set_num_threads(1)
    cfg = load_pretrain_config(None, ["sizes=[neox-tiny]", "tokenizer_vocab_size=512", "seq_len=32",
                                      "batch_size=4", f"n_tokens={4 * 32 * 60}", "checkpoint_every=50",
                                      "warmup_steps=5", "lr=3e-3", "corpus.n_documents=60", "corpus.doc_words=40"])
    (result,) = pretrain_suite(cfg, tmp_path)
    assert sorted(result.checkpoints) == [0, 1, 2, 4, 8, 16, 32, 50, 60]
    assert result.final_loss < math.log(512) - 1  # well below the uniform-guess loss
    assert result.flops == 6 * result.n_tokens * result.n_params
    assert (tmp_path / "neox-tiny" / "pretrain.json").is_file()

    from robustperf.llm.config import load_llm_config
    from robustperf.llm.pipeline import setup

    final_dir = result.checkpoints[60]
    s = setup(load_llm_config(None, ["model.source=local", f"model.path={final_dir}", "task.n_train=4",
                                     "task.n_val=2", "model.max_length=128"]))
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(str(final_dir))
    body = dict(s.model.gpt_neox.named_parameters())
    for name, p in lm.gpt_neox.named_parameters():
        torch.testing.assert_close(body[name], p)  # the classifier starts from the pretrained body
