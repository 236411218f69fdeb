"""LLM attacks on classifiers: GCG and RandomToken (papers/000 App. C; REFERENCE.md section 5).

Both replace a block of N tokens placed between a prompt's prefix and closing (`AttackPrompt`) and aim
at the wrong label. ``create_llm_attack("gcg", n_iterations=30)`` builds one; ``attack.perturb(model,
tokenizer, prompts)`` runs it and returns an `LLMAttackResult` with the attacked token ids, per-example
success, forward/backward counts and FLOPs (2 x tokens x params per forward, 4x for backward).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from robustperf.llm.attack_config import GCGConfig, RandomTokenConfig, build_attack_config
from robustperf.llm.cost import backward_flops, forward_flops
from robustperf.llm.models import count_parameters
from robustperf.llm.scoring import PromptScorer, classify
from robustperf.llm.tasks import Example
from robustperf.llm.tokenizer import allowed_token_ids, encode, special_ends
from robustperf.registry import Registry

logger = logging.getLogger(__name__)

LLM_ATTACKS: Registry[type] = Registry("LLM attack")


@dataclass(frozen=True)
class AttackPrompt:
    """Token ids of one prompt: ``prefix + block + closing``; ``label`` is the true class."""

    prefix: tuple[int, ...]
    closing: tuple[int, ...]
    label: int

    def with_block(self, block: Sequence[int]) -> list[int]:
        return [*self.prefix, *block, *self.closing]


def make_prompts(tokenizer: Any, examples: Sequence[Example], *, insertion: str = "task") -> list[AttackPrompt]:
    """Tokenise examples for attack: ``insertion="task"`` keeps the task's closing after the block
    (PasswordMatch's separator), ``"end"`` appends the block after the whole prompt."""
    lead, trail = special_ends(tokenizer)  # an encoder's [CLS] ... [SEP] stay outside the block
    out = []
    for ex in examples:
        if insertion == "task":
            out.append(AttackPrompt((*lead, *encode(tokenizer, ex.prefix)), (*encode(tokenizer, ex.closing), *trail),
                                    ex.label))
        else:
            out.append(AttackPrompt((*lead, *encode(tokenizer, ex.text)), tuple(trail), ex.label))
    return out


@dataclass(frozen=True)
class LLMAttackResult:
    """What an attack did to each prompt.

    Attributes:
        ids: attacked token sequences (prefix + block + closing).
        blocks: the adversarial blocks.
        success: the model's prediction differs from the true label after the attack.
        n_forward: sequences run forward per prompt (candidates, gradient passes, checks).
        n_backward: backward passes per prompt.
        n_queries: RandomToken tries counted by the algorithm (= its budget unless it stopped early).
        losses: per prompt, the best target loss before the attack and after each iteration (GCG).
        flops: total FLOPs, paper convention (2 x tokens x params forward, 4x backward).
    """

    ids: list[list[int]]
    blocks: list[list[int]]
    success: list[bool]
    n_forward: list[int]
    n_backward: list[int]
    n_queries: list[int] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)
    flops: float = 0.0


def target_label(label: int, n_labels: int) -> int:
    """The wrong label the attack aims at: the other class for binary tasks, the next one otherwise."""
    return (label + 1) % n_labels


def _prompt_tensors(prompt: AttackPrompt, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(prompt.prefix, dtype=torch.long, device=device),
            torch.tensor(prompt.closing, dtype=torch.long, device=device))


# ---------------------------------------------------------------------------- GCG


@LLM_ATTACKS.register("gcg")
class GCG:
    """Greedy coordinate gradient for classification (Zou et al. 2023 Alg. 1; papers/000 App. C)."""

    def __init__(self, config: GCGConfig) -> None:
        self.config = config

    def perturb(self, model: Any, tokenizer: Any, prompts: Sequence[AttackPrompt], *, seed: int = 0,
                precision: str = "fp32", progress: Callable[[int], None] | None = None) -> LLMAttackResult:
        """Attack every prompt; the model is put in eval mode and its parameters are left untouched."""
        model.eval()
        device = next(model.parameters()).device
        allowed = torch.tensor(allowed_token_ids(tokenizer), device=device)
        init = encode(tokenizer, self.config.init_token)[:1] or [int(allowed[0])]
        n_params = count_parameters(model)
        n_labels = model.config.num_labels
        gen = torch.Generator(device="cpu").manual_seed(seed)
        rows: dict[str, list[Any]] = {k: [] for k in ("ids", "blocks", "success", "n_forward", "n_backward",
                                                        "losses")}
        flops = 0.0
        for i, prompt in enumerate(prompts):
            out = self._attack_one(model, tokenizer, prompt, init * self.config.n_attack_tokens, allowed, gen,
                                   target_label(prompt.label, n_labels), precision)
            block, success, n_fwd, n_bwd, losses = out
            seq_len = len(prompt.prefix) + len(prompt.closing) + len(block)
            flops += forward_flops(seq_len * n_fwd, n_params) + backward_flops(seq_len * n_bwd, n_params)
            for key, value in zip(rows, (prompt.with_block(block), block, success, n_fwd, n_bwd, losses), strict=True):
                rows[key].append(value)
            if progress:
                progress(i + 1)
        return LLMAttackResult(**rows, n_queries=list(rows["n_forward"]), flops=flops)

    def _attack_one(self, model: Any, tokenizer: Any, prompt: AttackPrompt, init: list[int],
                    allowed: torch.Tensor, gen: torch.Generator, target: int,
                    precision: str) -> tuple[list[int], bool, int, int, list[float]]:
        cfg = self.config
        device = allowed.device
        prefix, closing = _prompt_tensors(prompt, device)
        scorer = PromptScorer(model, prefix, closing, use_cache=cfg.prefix_cache, precision=precision)
        block = torch.tensor(init, dtype=torch.long, device=device)
        logits = scorer.logits(block[None])
        best_loss = float(torch.nn.functional.cross_entropy(logits, torch.tensor([target], device=device)))
        best_block, best_pred = block.clone(), int(logits.argmax(-1))
        n_fwd, n_bwd, losses = 1, 0, [best_loss]
        for _ in range(cfg.n_iterations):
            _, grad = scorer.loss_and_grad(block, target)
            n_fwd, n_bwd = n_fwd + 1, n_bwd + 1
            candidates = self._candidates(block, grad, allowed, gen)
            if cfg.filter_retokenization:
                candidates = _retokenization_filter(tokenizer, candidates)
            if candidates.shape[0] == 0:
                logger.debug("GCG: every candidate changed under re-tokenisation; iteration skipped")
                losses.append(best_loss)
                continue
            logits = scorer.logits(candidates, batch_size=cfg.candidate_batch_size)
            n_fwd += candidates.shape[0]
            cand_loss = torch.nn.functional.cross_entropy(
                logits, torch.full((candidates.shape[0],), target, device=device), reduction="none")
            j = int(cand_loss.argmin())
            block = candidates[j]  # Alg. 1 moves to the best candidate even if it is worse than before
            if float(cand_loss[j]) < best_loss:
                best_loss, best_block, best_pred = float(cand_loss[j]), block.clone(), int(logits[j].argmax())
            losses.append(best_loss)
            if cfg.early_stop and best_pred != prompt.label:
                break
        return best_block.tolist(), best_pred != prompt.label, n_fwd, n_bwd, losses

    def _candidates(self, block: torch.Tensor, grad: torch.Tensor, allowed: torch.Tensor,
                    gen: torch.Generator) -> torch.Tensor:
        """B single-token substitutions: a random position, a random token from its top-k (Alg. 1)."""
        cfg = self.config
        n = block.shape[0]
        scores = torch.full_like(grad, float("inf"))
        scores[:, allowed] = grad[:, allowed]
        k = min(cfg.top_k, allowed.numel())
        top = (-scores).topk(k, dim=1).indices  # (N, k): most negative gradient = largest loss decrease
        pos = torch.randint(0, n, (cfg.n_candidates,), generator=gen).to(block.device)
        pick = torch.randint(0, k, (cfg.n_candidates,), generator=gen).to(block.device)
        candidates = block[None].repeat(cfg.n_candidates, 1)
        candidates[torch.arange(cfg.n_candidates, device=block.device), pos] = top[pos, pick]
        return candidates


def _retokenization_filter(tokenizer: Any, candidates: torch.Tensor) -> torch.Tensor:
    """Keep candidates whose block survives decode -> encode unchanged (papers/000 App. C)."""
    rows = candidates.tolist()
    # batched decode/encode: the filter runs on the CPU every iteration, so per-row calls would dominate on a GPU
    texts = tokenizer.batch_decode(rows)
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    keep = [i for i, (row, enc) in enumerate(zip(rows, encoded, strict=True)) if list(enc) == row]
    return candidates[torch.tensor(keep, dtype=torch.long, device=candidates.device)]


# ---------------------------------------------------------------------------- RandomToken


@LLM_ATTACKS.register("random_token")
class RandomToken:
    """N uniform random tokens per try, stop at the first success (papers/000 App. C, Alg. 1)."""

    def __init__(self, config: RandomTokenConfig) -> None:
        self.config = config

    def perturb(self, model: Any, tokenizer: Any, prompts: Sequence[AttackPrompt], *, seed: int = 0,
                precision: str = "fp32", progress: Callable[[int], None] | None = None) -> LLMAttackResult:
        """Attack every prompt; tries are evaluated ``batch_size`` at a time but counted one by one."""
        model.eval()
        device = next(model.parameters()).device
        allowed = torch.tensor(allowed_token_ids(tokenizer), device=device)
        n_params = count_parameters(model)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        rows: dict[str, list[Any]] = {k: [] for k in ("ids", "blocks", "success", "n_forward", "n_queries")}
        flops = 0.0
        for i, prompt in enumerate(prompts):
            block, success, n_fwd, n_queries = self._attack_one(model, prompt, allowed, gen, precision)
            flops += forward_flops((len(prompt.prefix) + len(prompt.closing) + len(block)) * n_fwd, n_params)
            for key, value in zip(rows, (prompt.with_block(block), block, success, n_fwd, n_queries), strict=True):
                rows[key].append(value)
            if progress:
                progress(i + 1)
        return LLMAttackResult(**rows, n_backward=[0] * len(prompts), flops=flops)

    def _attack_one(self, model: Any, prompt: AttackPrompt, allowed: torch.Tensor, gen: torch.Generator,
                    precision: str) -> tuple[list[int], bool, int, int]:
        cfg = self.config
        prefix, closing = _prompt_tensors(prompt, allowed.device)
        scorer = PromptScorer(model, prefix, closing, use_cache=True, precision=precision)
        n_fwd, used = 0, 0
        block = None
        while used < cfg.n_queries:
            b = min(cfg.batch_size, cfg.n_queries - used)
            idx = torch.randint(0, allowed.numel(), (b, cfg.n_attack_tokens), generator=gen).to(allowed.device)
            tries = allowed[idx]
            wrong = (scorer.logits(tries).argmax(-1) != prompt.label).nonzero()
            n_fwd += b
            if wrong.numel():
                first = int(wrong[0])
                return tries[first].tolist(), True, n_fwd, used + first + 1
            used += b
            block = tries[-1]
        assert block is not None  # n_queries >= 1 (RandomTokenConfig validates it)
        return block.tolist(), False, n_fwd, used


def create_llm_attack(name: str, **params: Any) -> GCG | RandomToken:
    """An attack by registry name; a misspelled parameter is an error listing the valid ones."""
    cls = LLM_ATTACKS.get(name)
    return cls(build_attack_config(name, params))


def predictions(model: Any, tokenizer: Any, seqs: Sequence[Sequence[int]], *, device: torch.device,
                batch_size: int = 32, precision: str = "fp32") -> list[int]:
    """Predicted labels of token sequences."""
    model.eval()
    logits = classify(model, seqs, pad_id=tokenizer.pad_token_id, device=device, batch_size=batch_size,
                      precision=precision)
    return logits.argmax(-1).tolist()
