"""LLM-robustness runs: fine-tune, attack, iterative adversarial training (papers/000; REFERENCE.md section 5).

Each command is one run in the shared run store (``runs/<run_id>/``, `RunRecord` with ``kind="llm"``);
the run id hashes the resolved single-seed `LLMConfig` and the command. A finished run is returned
untouched; ``attack`` and ``advtrain`` start from the ``finetune`` run of the same model/task/training
settings (shared between them, run once).

Adversarial training follows papers/000 App. E (Figure 11), with round 0 being the clean fine-tune:
each round attacks ``n_attack_train`` clean training examples with the current model and adds the
successful ones (``rounds.add``; "all" adds every attacked example) to the pool, trains ``epochs_per_round`` on the whole pool, then attacks ``n_attack_val`` validation
examples (with ``rounds.eval_attack`` if set: transfer) and records the attack success rate and the
round's compute (training 6 x tokens x params, plus the attacks' own forward/backward FLOPs). A killed
``advtrain`` run resumes after its last completed round.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from robustperf.device import resolve_device
from robustperf.llm.attacks import AttackPrompt, LLMAttackResult, create_llm_attack, make_prompts, predictions
from robustperf.llm.config import LLMAttackConfig, LLMConfig
from robustperf.llm.metrics import attack_success_rate
from robustperf.llm.models import count_parameters, load_local_classifier, package_model_dir, random_neox_classifier
from robustperf.llm.offense_defense import step_record
from robustperf.llm.tasks import Example, attacked_label, build_task
from robustperf.llm.tokenizer import build_bpe_tokenizer, encode_sequence, load_tokenizer
from robustperf.llm.training import FinetuneResult, finetune, make_optimizer
from robustperf.store import CostRecord, RunDir, write_json_atomic
from robustperf.store.checkpoint import save_torch_atomic
from robustperf.store.owner import OwnedRun, owned_run

if TYPE_CHECKING:
    from robustperf.cost.energy import EnergyMeter
    from robustperf.store.session import Reading

logger = logging.getLogger(__name__)

CHECKPOINT = "model.pt"


# ---------------------------------------------------------------------------- setup


@dataclass
class LLMSetup:
    """Model, tokenizer and tokenised splits of one run (over-long examples already dropped)."""

    model: Any
    tokenizer: Any
    device: torch.device
    train: list[Example]
    val: list[Example]
    train_ids: list[list[int]]
    val_ids: list[list[int]]
    n_dropped: int


def build_model_and_tokenizer(cfg: LLMConfig) -> tuple[Any, Any]:
    """The classifier (seeded random init, or a local directory) and its tokenizer."""
    m = cfg.model
    if m.source == "local":
        return load_local_classifier(str(m.path), num_labels=m.num_labels, seed=cfg.seed)
    if m.source == "package":
        return load_local_classifier(package_model_dir(str(m.package)), num_labels=m.num_labels, seed=cfg.seed)
    tokenizer = build_bpe_tokenizer(m.tokenizer_vocab_size)
    model = random_neox_classifier(m.name, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                   num_labels=m.num_labels, max_length=m.max_length, seed=cfg.seed)
    return model, tokenizer


def _fits(examples: Sequence[Example], tokenizer: Any, budget: int) -> tuple[list[Example], list[list[int]]]:
    kept, ids = [], []
    for ex in examples:
        seq = encode_sequence(tokenizer, ex.text)
        if len(seq) <= budget:
            kept.append(ex)
            ids.append(seq)
    return kept, ids


def setup(cfg: LLMConfig) -> LLMSetup:
    """Build everything a run needs; examples longer than the context (minus the attack block) are dropped."""
    model, tokenizer = build_model_and_tokenizer(cfg)
    device = resolve_device(cfg.runtime.device)
    model.to(device).eval()
    t = cfg.task
    train = build_task(t.name, t.n_train, seed=cfg.seed, split="train", path=t.path)
    val = build_task(t.name, t.n_val, seed=cfg.seed, split="validation", path=t.path)
    budget = cfg.model.max_length - max(_block_len(cfg.attack), _block_len(cfg.eval_attack))
    train_k, train_ids = _fits(train, tokenizer, budget)
    val_k, val_ids = _fits(val, tokenizer, budget)
    dropped = len(train) + len(val) - len(train_k) - len(val_k)
    if dropped:
        logger.info("dropped %d examples longer than %d tokens (papers/000 App. B)", dropped, budget)
    return LLMSetup(model, tokenizer, device, train_k, val_k, train_ids, val_ids, dropped)


def _block_len(attack: LLMAttackConfig) -> int:
    return int(attack.params["n_attack_tokens"])


# ---------------------------------------------------------------------------- attack evaluation


@dataclass(frozen=True)
class AttackEval:
    """Attack success on a set of examples (papers/000 section 3 definition).

    Attributes:
        n_examples: examples classified clean (the clean-accuracy denominator).
        n_correct: of those, correctly classified before the attack.
        n_attacked: correctly classified examples the attack may not relabel, attacked (the ASR
            denominator; `attackable`).
        n_flipped: of those, wrong after the attack with their label unchanged.
        n_relabelled: attacks whose text changed the true label (not counted as success; `attacked_label`).
        clean_acc: n_correct / n_examples.
        asr: n_flipped / n_attacked (None when nothing was attacked).
        flops: attack FLOPs (clean predictions included).
        n_forward: sequences run forward by the attack.
        seconds: wall time of the attack.
        result: the raw attack result (attacked prompts only; success re-checked).
    """

    n_examples: int
    n_correct: int
    n_attacked: int
    n_flipped: int
    n_relabelled: int
    clean_acc: float
    asr: float | None
    flops: float
    n_forward: int
    seconds: float
    result: LLMAttackResult

    def summary(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("n_examples", "n_correct", "n_attacked", "n_flipped", "n_relabelled",
                                              "clean_acc", "asr", "flops", "n_forward", "seconds")}


def attackable(examples: Sequence[Example], insertion: str) -> list[int]:
    """Indices of the examples whose true label an attack block inserted at ``insertion`` cannot change.

    With ``insertion="task"`` the block goes between prefix and closing, which relabels a correct
    PasswordMatch attempt (`Example.attack_changes_label`); appended after the whole prompt it changes nothing.
    """
    return [i for i, ex in enumerate(examples) if insertion == "end" or not ex.attack_changes_label]


def _recheck(task: str, tokenizer: Any, labels: Sequence[int], result: LLMAttackResult) -> tuple[LLMAttackResult, list[int], int]:
    """Re-label every attacked text by the task's rule: a success that changed the true label is none.

    Returns the result with corrected ``success``, the true labels of the attacked texts, and how many
    attacks relabelled their example.
    """
    success, true_labels, relabelled = [], [], 0
    for ids, ok, label in zip(result.ids, result.success, labels, strict=True):
        true = attacked_label(task, tokenizer.decode(ids, skip_special_tokens=True), label)
        relabelled += int(true != label)
        true_labels.append(true)
        success.append(bool(ok) and true == label)
    return dataclasses.replace(result, success=success), true_labels, relabelled


def evaluate_attack(setup_: LLMSetup, examples: Sequence[Example], ids: Sequence[Sequence[int]],
                    attack_cfg: LLMAttackConfig, *, seed: int, precision: str = "fp32", task: str = "",
                    n_attack: int | None = None) -> AttackEval:
    """Clean predictions on ``examples``, then the attack on the first ``n_attack`` attackable examples
    (`attackable`) that were classified correctly (the ASR denominator); successes re-checked by the
    task's labelling rule (`attacked_label`)."""
    from robustperf.llm.cost import forward_flops

    start = time.perf_counter()
    n_params = count_parameters(setup_.model)
    pred = predictions(setup_.model, setup_.tokenizer, ids, device=setup_.device, precision=precision)
    correct = [p == ex.label for p, ex in zip(pred, examples, strict=True)]
    considered = attackable(examples, attack_cfg.params["insertion"])[:n_attack]
    targets = [examples[i] for i in considered if correct[i]]
    attack = create_llm_attack(attack_cfg.name, **attack_cfg.params)
    prompts = make_prompts(setup_.tokenizer, targets, insertion=attack_cfg.params["insertion"])
    result = attack.perturb(setup_.model, setup_.tokenizer, prompts, seed=seed, precision=precision)
    result, _, relabelled = _recheck(task, setup_.tokenizer, [p.label for p in prompts], result)
    after = [not s for s in result.success]
    asr = attack_success_rate([True] * len(after), after) if after else None
    flops = forward_flops(sum(len(s) for s in ids), n_params) + result.flops
    return AttackEval(len(examples), sum(correct), len(targets), sum(result.success), relabelled,
                      sum(correct) / max(1, len(examples)), asr, flops, sum(result.n_forward) + len(ids),
                      time.perf_counter() - start, result)


def attack_training_examples(setup_: LLMSetup, examples: Sequence[Example], attack_cfg: LLMAttackConfig, *,
                             seed: int, precision: str = "fp32",
                             task: str = "") -> tuple[list[list[int]], list[int], LLMAttackResult]:
    """Attack training examples (all of them, correct or not) -> (attacked ids, true labels, result).

    The labels are those of the attacked texts (`attacked_label`), and a success that relabelled its
    example is not one, so adversarial training never learns a wrong label.
    """
    attack = create_llm_attack(attack_cfg.name, **attack_cfg.params)
    prompts: list[AttackPrompt] = make_prompts(setup_.tokenizer, examples,
                                               insertion=attack_cfg.params["insertion"])
    result = attack.perturb(setup_.model, setup_.tokenizer, prompts, seed=seed, precision=precision)
    result, labels, _ = _recheck(task, setup_.tokenizer, [p.label for p in prompts], result)
    return result.ids, labels, result


# ---------------------------------------------------------------------------- runs


@contextmanager
def _owned(cfg: LLMConfig, runs_dir: str | Path, command: str) -> Iterator[OwnedRun]:
    """The run of ``command`` owned for this attempt (`robustperf.store.owner.owned_run`: its lock, one process
    per run; an exception inside marks it failed, a Ctrl-C interrupted), its session open unless it is finished
    already (``run.finished``: return it untouched)."""
    rd = RunDir.for_run(runs_dir, cfg.run_id(command))
    with owned_run(rd, meter_factory=lambda: _meter(cfg)) as run:
        if run.finished:
            logger.info("run %s is finished; returning it untouched", rd.run_id)
        else:  # with no round state there is nothing to resume from: the run restarts from its beginning
            run.open(cfg.resolved(), kind="llm", resumes=(rd.checkpoints / ROUND_STATE).is_file(),
                     provenance_extra={"seed": cfg.seed, "command": command})
        yield run


def _meter(cfg: LLMConfig) -> EnergyMeter:
    """The energy meter of one command's work (built here, started by the session)."""
    from robustperf.cost.energy import create_meter

    return create_meter(cfg.cost.energy_meter, watts=cfg.cost.watts)


def _cost(cfg: LLMConfig, *, n_sequences: int, train_flops: float, attack_flops: float,
          reading: Reading) -> CostRecord:
    from robustperf.cost.accounting import run_cost

    per_seq = train_flops / n_sequences if n_sequences else 0.0
    cost = run_cost(cfg.cost, seconds=reading.seconds, samples_seen=n_sequences, flops_per_sample=per_seq,
                    joules=reading.joules, energy_source=reading.source, eval_flops=attack_flops)
    cost["attack_flops"] = attack_flops
    cost["flops_note"] = "papers/000: forward 2 x tokens x params, backward 4x; attack FLOPs in eval_flops"
    return CostRecord.from_dict(cost)


def final_metrics(rd: RunDir) -> dict[str, Any]:
    """The ``final`` block of a run's record ({} if it has no record yet)."""
    record = rd.read_record()
    return dict(record.final) if record else {}


def run_finetune(cfg: LLMConfig, runs_dir: str | Path = "runs") -> RunDir:
    """Fine-tune the classifier on the clean task (one run per seed of ``cfg``; use `per_seed`)."""
    with _owned(cfg, runs_dir, "finetune") as run:
        if run.session is None:
            return run.run_dir
        rd, session = run.run_dir, run.session
        run.start_meter()
        s = setup(cfg)
        fit, clean_acc, epochs = _finetune_to_target(cfg, s)
        save_model(rd, s)
        reading = session.stop_meter()
        final = {"command": "finetune", "clean_acc": clean_acc, "train_loss": fit.train_loss,
                 "n_params": count_parameters(s.model), "n_train": len(s.train), "n_val": len(s.val),
                 "n_dropped": s.n_dropped, "train_flops": fit.flops,
                 "n_sequences": fit.n_sequences, "n_tokens": fit.n_tokens, "epochs": epochs,
                 "target_clean_acc": cfg.training.target_clean_acc}
        session.log({"round": 0, **final})
        session.finish(final=final, cost=_cost(cfg, n_sequences=fit.n_sequences, train_flops=fit.flops,
                                               attack_flops=0.0, reading=reading))
    return run.run_dir


def _val_accuracy(cfg: LLMConfig, s: LLMSetup) -> float:
    pred = predictions(s.model, s.tokenizer, s.val_ids, device=s.device, precision=cfg.runtime.precision)
    return sum(p == e.label for p, e in zip(pred, s.val, strict=True)) / max(1, len(s.val))


def _finetune_to_target(cfg: LLMConfig, s: LLMSetup) -> tuple[FinetuneResult, float, int]:
    """``training.epochs``, then (with ``target_clean_acc``) one epoch at a time until validation accuracy
    reaches the target or ``max_epochs`` are spent; each extra epoch is a fresh schedule cycle without
    warm-up (a warm restart) on the same optimiser. Returns the summed fit, the final accuracy, the epochs."""
    t = cfg.training
    labels = [e.label for e in s.train]
    optimizer = make_optimizer(s.model, t)
    kw = dict(pad_id=s.tokenizer.pad_token_id, device=s.device, precision=cfg.runtime.precision, optimizer=optimizer)
    fit = finetune(s.model, s.train_ids, labels, t, epochs=t.epochs, seed=cfg.seed, **kw)
    acc, epochs = _val_accuracy(cfg, s), t.epochs
    restart = t.model_copy(update={"warmup_steps": 0})
    while t.target_clean_acc is not None and acc < t.target_clean_acc and epochs < int(t.max_epochs or 0):
        more = finetune(s.model, s.train_ids, labels, restart, epochs=1, seed=cfg.seed * 7919 + epochs, **kw)
        fit = FinetuneResult(more.train_loss, fit.n_sequences + more.n_sequences, fit.n_tokens + more.n_tokens,
                             fit.n_steps + more.n_steps, fit.flops + more.flops)
        acc, epochs = _val_accuracy(cfg, s), epochs + 1
        logger.info("fine-tune epoch %d: validation accuracy %.4f (target %.2f)", epochs, acc, t.target_clean_acc)
    if t.target_clean_acc is not None and acc < t.target_clean_acc:
        logger.warning("fine-tuning stopped at max_epochs=%d with validation accuracy %.4f < target %.2f",
                       epochs, acc, t.target_clean_acc)
    return fit, acc, epochs


def save_model(rd: RunDir, s: LLMSetup) -> None:
    """Weights (tensors only) and tokenizer into the run directory."""
    save_torch_atomic(rd.checkpoints / CHECKPOINT, {k: v.detach().cpu() for k, v in s.model.state_dict().items()})
    s.tokenizer.save_pretrained(str(rd.path / "tokenizer"))


def load_finetuned(cfg: LLMConfig, runs_dir: str | Path) -> tuple[LLMSetup, RunDir]:
    """The finetune run of ``cfg`` (run first if needed) loaded into a fresh setup."""
    ft = run_finetune(cfg, runs_dir)
    s = setup(cfg)
    path = ft.checkpoints / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; delete {ft.path} and run `robustperf llm finetune` again")
    s.model.load_state_dict(torch.load(path, map_location=s.device, weights_only=True))
    s.tokenizer = load_tokenizer(ft.path / "tokenizer")
    s.model.eval()
    return s, ft


def run_attack(cfg: LLMConfig, runs_dir: str | Path = "runs") -> RunDir:
    """Attack ``rounds.n_attack_val`` validation examples of the fine-tuned model with ``cfg.attack``."""
    with _owned(cfg, runs_dir, "attack") as run:
        if run.session is None:
            return run.run_dir
        rd, session = run.run_dir, run.session
        s, ft = load_finetuned(cfg, runs_dir)
        run.start_meter()
        ev = evaluate_attack(s, s.val, s.val_ids, cfg.attack, seed=cfg.seed, precision=cfg.runtime.precision,
                             task=cfg.task.name, n_attack=cfg.rounds.n_attack_val)
        reading = session.stop_meter()
        _write_attacked(rd, "attack", s, ev.result)
        final = {"command": "attack", "attack": cfg.attack.name, "finetune_run": ft.run_id,
                 "n_params": count_parameters(s.model), **ev.summary()}
        session.log({"round": 0, **final})
        session.finish(final=final, cost=_cost(cfg, n_sequences=0, train_flops=0.0, attack_flops=ev.flops,
                                               reading=reading))
    return run.run_dir


def _write_attacked(rd: RunDir, name: str, s: LLMSetup, result: LLMAttackResult) -> None:
    rows = [{"text": s.tokenizer.decode(ids), "block": s.tokenizer.decode(block), "success": ok, "n_forward": n}
            for ids, block, ok, n in zip(result.ids, result.blocks, result.success, result.n_forward, strict=True)]
    write_json_atomic(rd.evaluations_dir / f"{name}.json", rows)


def run_advtrain(cfg: LLMConfig, runs_dir: str | Path = "runs") -> RunDir:
    """Iterative adversarial training; one metrics row per round (round 0 = the clean fine-tune)."""
    with _owned(cfg, runs_dir, "advtrain") as run:
        if run.session is None:
            return run.run_dir
        rd, session = run.run_dir, run.session
        s, ft = load_finetuned(cfg, runs_dir)
        run.start_meter()
        ft_final = final_metrics(ft)
        rows, totals = _adversarial_rounds(cfg, s, rd, finetune_flops=float(ft_final["train_flops"]),
                                           finetune_sequences=int(ft_final["n_sequences"]))
        reading = session.stop_meter()
        final = {"command": "advtrain", "finetune_run": ft.run_id, "n_params": count_parameters(s.model),
                 "attack": cfg.attack.name, "eval_attack": cfg.eval_attack.name, **rows[-1],
                 "asr_by_round": [r["asr"] for r in rows], "clean_acc_by_round": [r["clean_acc"] for r in rows],
                 "flops_by_round": [r["round_flops"] for r in rows]}
        session.finish(final=final, cost=_cost(cfg, n_sequences=int(totals["n_sequences"]),
                                               train_flops=totals["train_flops"],
                                               attack_flops=totals["attack_flops"], reading=reading))
    return run.run_dir


def _adversarial_rounds(cfg: LLMConfig, s: LLMSetup, rd: RunDir, *,
                        finetune_flops: float, finetune_sequences: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Rounds 0..n_rounds; round 0 carries the clean fine-tune's FLOPs (done in its own run).

    The state after each round (weights, optimiser, pool, sampler) is saved, so a killed run resumes at
    the next round with the same result; every random choice is seeded per round.
    """
    r_cfg, precision = cfg.rounds, cfg.runtime.precision
    train_cfg = cfg.training if r_cfg.lr is None else cfg.training.model_copy(
        update={"lr": r_cfg.lr, "lr_schedule": "constant", "warmup_steps": 0})
    optimizer = make_optimizer(s.model, train_cfg)
    st = _load_round_state(rd, s, optimizer) or _RoundState(
        pool_ids=list(s.train_ids[: r_cfg.n_clean_pool]), pool_labels=[e.label for e in s.train[: r_cfg.n_clean_pool]],
        rng=random.Random(cfg.seed),
        totals={"train_flops": 0.0, "attack_flops": 0.0, "n_sequences": finetune_sequences}, rows=[])
    for rnd in range(len(st.rows), r_cfg.n_rounds + 1):
        t0 = time.perf_counter()
        row: dict[str, Any] = {"round": rnd, "train_flops": finetune_flops if rnd == 0 else 0.0,
                               "attack_train_flops": 0.0, "n_added": 0}
        if rnd > 0:
            pickable = attackable(s.train, cfg.attack.params["insertion"])
            picked = st.rng.sample(pickable, min(r_cfg.n_attack_train, len(pickable)))
            adv_ids, adv_labels, res = attack_training_examples(s, [s.train[i] for i in picked], cfg.attack,
                                                                seed=cfg.seed * 1000 + rnd, precision=precision,
                                                                task=cfg.task.name)
            if r_cfg.add == "successful":  # papers/000 Sec. 5: only the attacks that fooled the model join
                keep = [i for i, ok in enumerate(res.success) if ok]
                adv_ids, adv_labels = [adv_ids[i] for i in keep], [adv_labels[i] for i in keep]
            st.pool_ids += adv_ids
            st.pool_labels += adv_labels
            fit = finetune(s.model, st.pool_ids, st.pool_labels, train_cfg, pad_id=s.tokenizer.pad_token_id,
                           epochs=cfg.training.epochs_per_round, seed=cfg.seed * 1000 + rnd, device=s.device,
                           precision=precision, optimizer=optimizer)
            row.update(train_flops=fit.flops, attack_train_flops=res.flops, n_added=len(adv_ids),
                       train_loss=fit.train_loss, attack_train_success=sum(res.success) / max(1, len(res.success)))
            st.totals["n_sequences"] += fit.n_sequences
        ev = evaluate_attack(s, s.val, s.val_ids, cfg.eval_attack, seed=cfg.seed * 1000 + 500 + rnd,
                             precision=precision, task=cfg.task.name, n_attack=r_cfg.n_attack_val)
        st.totals["train_flops"] += row["train_flops"]
        st.totals["attack_flops"] += row["attack_train_flops"] + ev.flops
        row.update(step_record(cfg.eval_attack.name, cfg.eval_attack.params, losses=ev.result.losses,
                               success=ev.result.success, n_queries=ev.result.n_queries, flops=ev.result.flops,
                               n_labels=cfg.model.num_labels), n_params=count_parameters(s.model))
        row.update(pool_size=len(st.pool_ids), clean_acc=ev.clean_acc, asr=ev.asr, n_val_correct=ev.n_correct,
                   n_val_attacked=ev.n_attacked, n_val_flipped=ev.n_flipped, n_val_relabelled=ev.n_relabelled, attack_eval_flops=ev.flops,
                   round_flops=row["train_flops"] + row["attack_train_flops"] + ev.flops,
                   cum_flops=st.totals["train_flops"] + st.totals["attack_flops"], seconds=time.perf_counter() - t0)
        st.rows.append(row)
        _save_round_state(rd, s, optimizer, st)
        rd.append_metrics(row)
        logger.info("round %d: pool %d, clean acc %.3f, ASR %s", rnd, len(st.pool_ids), ev.clean_acc, ev.asr)
    return st.rows, st.totals


ROUND_STATE = "advtrain_state.pt"


@dataclass
class _RoundState:
    """Everything adversarial training carries from one round to the next (besides weights and optimiser)."""

    pool_ids: list[list[int]]
    pool_labels: list[int]
    rng: random.Random
    totals: dict[str, float]
    rows: list[dict[str, Any]]


def _save_round_state(rd: RunDir, s: LLMSetup, optimizer: torch.optim.Optimizer, st: _RoundState) -> None:
    payload = {"model": {k: v.detach().cpu() for k, v in s.model.state_dict().items()},
               "optimizer": optimizer.state_dict(), "pool_ids": st.pool_ids, "pool_labels": st.pool_labels,
               "rng": st.rng.getstate(), "totals": st.totals, "rows": st.rows}
    save_torch_atomic(rd.checkpoints / ROUND_STATE, payload)


def _load_round_state(rd: RunDir, s: LLMSetup, optimizer: torch.optim.Optimizer) -> _RoundState | None:
    """The state saved after the last completed round (None: start at round 0); metrics are cut to match."""
    path = rd.checkpoints / ROUND_STATE
    if not path.is_file():
        return None
    payload = torch.load(path, map_location=s.device, weights_only=True)
    s.model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    rng = random.Random()
    rng.setstate(_as_tuple(payload["rng"]))
    rows = payload["rows"]
    rd.metrics_path.unlink(missing_ok=True)
    for row in rows:
        rd.append_metrics(row)
    logger.info("resuming %s after round %d", rd.run_id, len(rows) - 1)
    return _RoundState(payload["pool_ids"], payload["pool_labels"], rng, payload["totals"], rows)


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


COMMANDS = {"finetune": run_finetune, "attack": run_attack, "advtrain": run_advtrain}
