"""Fine-tuning, one adversarial-training round and the run store, on a tiny model (CPU)."""

from __future__ import annotations

import pytest
import torch

from robustperf.llm.config import load_llm_config
from robustperf.llm.pipeline import run_advtrain, run_attack, setup
from robustperf.llm.training import finetune
from robustperf.store import load_index

TINY = ["model.name=neox-tiny", "model.tokenizer_vocab_size=512", "model.max_length=128", "task.n_train=16",
        "task.n_val=8", "training.lr=1e-3", "training.batch_size=8", "rounds.n_attack_train=6",
        "rounds.n_attack_val=8", "attack.gcg.n_attack_tokens=3", "attack.gcg.n_iterations=2",
        "attack.gcg.n_candidates=8", "attack.gcg.top_k=16", "runtime.device=cpu", "cost.energy_meter=none"]


def test_finetune_lowers_the_loss():
    torch.set_num_threads(1)
    cfg = load_llm_config(None, TINY)
    s = setup(cfg)
    seqs, labels = s.train_ids[:8], [e.label for e in s.train[:8]]
    first = finetune(s.model, seqs, labels, cfg.training, pad_id=s.tokenizer.pad_token_id, epochs=1, seed=0,
                     device=s.device)
    later = finetune(s.model, seqs, labels, cfg.training, pad_id=s.tokenizer.pad_token_id, epochs=15, seed=0,
                     device=s.device)
    assert later.train_loss < first.train_loss
    assert first.n_sequences == 8 and first.n_tokens == sum(len(x) for x in seqs)
    assert first.flops == 6 * first.n_tokens * sum(p.numel() for p in s.model.parameters())


def test_one_round_grows_the_pool_and_records_compute(tmp_path):
    torch.set_num_threads(1)
    cfg = load_llm_config(None, [*TINY, "rounds.n_rounds=1", "rounds.add=all"])
    rd = run_advtrain(cfg, tmp_path)
    rows = rd.read_metrics()
    assert [r["round"] for r in rows] == [0, 1]
    assert rows[1]["pool_size"] - rows[0]["pool_size"] == 6 == rows[1]["n_added"]
    assert rows[1]["attack_train_flops"] > 0 and rows[1]["train_flops"] > 0 and rows[0]["train_flops"] > 0
    assert rows[1]["cum_flops"] > rows[0]["cum_flops"]
    record = rd.read_record()
    assert record.status == "finished" and record.kind == "llm"
    assert record.cost["train_flops"] == sum(r["train_flops"] for r in rows)
    assert record.cost["eval_flops"] == sum(r["attack_train_flops"] + r["attack_eval_flops"] for r in rows)
    assert len(record.final["asr_by_round"]) == 2
    # the round's training pass covers clean + attacked examples: 6 x tokens x params over 22 sequences
    n_params = record.final["n_params"]
    assert rows[1]["train_flops"] % (6 * n_params) == 0
    # idempotent: a finished run is returned untouched
    mtime = rd.result_path.stat().st_mtime_ns
    assert run_advtrain(cfg, tmp_path).result_path.stat().st_mtime_ns == mtime
    kinds = {r["run_id"].split("-")[-2] for r in load_index(tmp_path)}
    assert kinds == {"finetune", "advtrain"}


def test_rounds_add_only_the_successful_attacks_by_default(tmp_path):
    torch.set_num_threads(1)
    cfg = load_llm_config(None, [*TINY, "rounds.n_rounds=1", "attack.name=random_token",
                                 "attack.random_token.n_queries=64", "rounds.n_clean_pool=10", "rounds.lr=1e-4",
                                 "task.n_val=32", "rounds.n_attack_val=16",
                                 "attack.random_token.insertion=end"])  # every prompt attackable
    assert cfg.rounds.add == "successful"
    rows = run_advtrain(cfg, tmp_path).read_metrics()
    assert rows[0]["pool_size"] == 10  # the rounds' pool starts from n_clean_pool clean examples
    n_success = round(rows[1]["attack_train_success"] * 6)
    assert rows[1]["n_added"] == n_success == rows[1]["pool_size"] - rows[0]["pool_size"]
    # the validation attack's per-prompt success steps feed the offense-defence analysis
    steps = rows[1]["val_success_steps"]
    assert len(steps) == rows[1]["n_val_attacked"] <= rows[1]["n_val_correct"]
    assert sum(s is not None for s in steps) == rows[1]["n_val_flipped"]
    assert all(s is None or 1 <= s <= 64 for s in steps) and rows[1]["attack_n_steps"] == 64
    assert rows[1]["attack_flops_per_step"] > 0


def test_attack_run_reuses_the_finetune_run(tmp_path):
    torch.set_num_threads(1)
    cfg = load_llm_config(None, [*TINY, "attack.name=random_token"])
    rd = run_attack(cfg, tmp_path)
    final = rd.read_record().final
    assert final["n_examples"] == 8
    assert final["n_attacked"] <= 4  # PasswordMatch: only the 4 wrong-password prompts can be attacked
    assert final["n_flipped"] <= final["n_attacked"] <= final["n_correct"]
    if final["n_attacked"]:
        assert final["asr"] == final["n_flipped"] / final["n_attacked"]
    assert (tmp_path / final["finetune_run"] / "checkpoints" / "model.pt").is_file()
    assert (rd.evaluations_dir / "attack.json").is_file()


def test_killed_advtrain_resumes_to_the_same_result(tmp_path, monkeypatch):
    import robustperf.llm.pipeline as pipeline

    torch.set_num_threads(1)
    cfg = load_llm_config(None, [*TINY, "rounds.n_rounds=2", "rounds.n_attack_train=3", "attack.name=random_token"])
    reference = run_advtrain(cfg, tmp_path / "a").read_metrics()

    real, calls = pipeline.evaluate_attack, []

    def dies_in_round_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "evaluate_attack", dies_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        run_advtrain(cfg, tmp_path / "b")
    killed = next(p for p in (tmp_path / "b").iterdir() if "-advtrain-" in p.name)
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == 2  # rounds 0 and 1 were recorded
    after: list[int] = []

    def counted(*args, **kwargs):
        after.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "evaluate_attack", counted)
    rd = run_advtrain(cfg, tmp_path / "b")
    assert len(after) == 1  # rounds 0 and 1 were not redone: only round 2 ran after the resume
    resumed = rd.read_metrics()
    assert rd.read_record().status == "finished"
    keys = ("round", "pool_size", "asr", "clean_acc", "train_flops", "cum_flops")
    assert [{k: r[k] for k in keys} for r in resumed] == [{k: r[k] for k in keys} for r in reference]


def test_examples_longer_than_the_context_are_dropped():
    from robustperf.llm.training import TrainingError

    cfg = load_llm_config(None, [*TINY, "model.max_length=48"])  # budget 48 - 3 attack tokens = 45
    s = setup(cfg)
    assert s.n_dropped > 0
    assert all(len(ids) <= 45 for ids in s.train_ids + s.val_ids)
    assert len(s.train) + len(s.val) + s.n_dropped == 16 + 8
    tiny = setup(load_llm_config(None, [*TINY, "model.max_length=20"]))
    assert tiny.train_ids == []
    with pytest.raises(TrainingError, match="max_length"):
        finetune(tiny.model, tiny.train_ids, [], cfg.training, pad_id=0, epochs=1, seed=0, device=tiny.device)


def test_lr_schedule_warms_up_then_holds_or_decays():
    from robustperf.llm.config import LLMTrainingConfig
    from robustperf.llm.training import lr_at

    const = LLMTrainingConfig(lr=1e-3, warmup_steps=10)
    assert lr_at(0, 100, const) == pytest.approx(1e-4) and lr_at(99, 100, const) == pytest.approx(1e-3)
    cos = LLMTrainingConfig(lr=1e-3, warmup_steps=10, lr_schedule="cosine")
    assert lr_at(9, 100, cos) == pytest.approx(1e-3)
    assert lr_at(100, 100, cos) == pytest.approx(1e-4)
    assert lr_at(40, 100, cos) > lr_at(70, 100, cos) > lr_at(99, 100, cos)


def test_attacks_never_target_or_count_a_relabelled_example(tmp_path, monkeypatch):
    """A correct password with a block after it is a wrong password: such prompts are not attacked, and an
    attack that typed the password into a wrong attempt has changed the label, not fooled the model."""
    from robustperf.llm import pipeline
    from robustperf.llm.attacks import LLMAttackResult
    from robustperf.llm.tasks import PASSWORD_SEPARATOR, PASSWORD_TEMPLATE, Example

    torch.set_num_threads(1)
    cfg = load_llm_config(None, TINY)
    s = setup(cfg)
    seen = []

    class TypesThePassword:  # the "attack" writes the password itself into the attempt
        def perturb(self, model, tokenizer, prompts, **kw):
            seen.extend(p.label for p in prompts)
            ids = [[*p.prefix, *tokenizer.encode("ark", add_special_tokens=False), *p.closing] for p in prompts]
            return LLMAttackResult(ids=ids, blocks=[[0]] * len(ids), success=[True] * len(ids),
                                   n_forward=[1] * len(ids), n_backward=[0] * len(ids))

    monkeypatch.setattr(pipeline, "create_llm_attack", lambda name, **kw: TypesThePassword())
    monkeypatch.setattr(pipeline, "predictions", lambda model, tok, ids, **kw: [e.label for e in examples])
    prefix = PASSWORD_TEMPLATE.format(password="ark") + PASSWORD_SEPARATOR
    examples = [Example(prefix + "", PASSWORD_SEPARATOR, 0),  # empty attempt + "ark" = the password
                Example(prefix + "ark", PASSWORD_SEPARATOR, 1, attack_changes_label=True),
                Example(prefix + "lumps", PASSWORD_SEPARATOR, 0)]
    ids = [s.tokenizer.encode(e.text, add_special_tokens=False) for e in examples]
    ev = pipeline.evaluate_attack(s, examples, ids, cfg.attack, seed=0, task="password_match")
    assert seen == [0, 0]  # the correct-password prompt was not attacked
    assert (ev.n_examples, ev.n_correct, ev.n_attacked) == (3, 3, 2)
    assert ev.n_relabelled == 1 and ev.n_flipped == 1 and ev.asr == 0.5  # "lumpsark" is still wrong
    # training rounds add attacked examples under their true labels
    adv_ids, labels, res = pipeline.attack_training_examples(s, [examples[0], examples[2]], cfg.attack, seed=0,
                                                             task="password_match")
    assert labels == [1, 0] and res.success == [False, True]


def test_finetune_continues_to_the_target_accuracy_within_max_epochs(tmp_path):
    from robustperf.config import ConfigError

    torch.set_num_threads(1)
    with pytest.raises(ConfigError, match="max_epochs"):
        load_llm_config(None, [*TINY, "training.target_clean_acc=0.95"])
    cfg = load_llm_config(None, [*TINY, "training.target_clean_acc=1.0", "training.max_epochs=3",
                                 "task.n_val=64"])
    from robustperf.llm.pipeline import run_finetune

    final = run_finetune(cfg, tmp_path).read_record().final
    # 16 training prompts cannot reach 1.0 on 64 validation prompts: all 3 epochs are spent, and recorded
    assert final["clean_acc"] < 1.0 and final["epochs"] == 3 and final["target_clean_acc"] == 1.0
    assert final["n_sequences"] == 3 * 16
