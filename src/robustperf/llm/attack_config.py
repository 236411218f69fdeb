"""Frozen configs of the LLM attacks (torch-free, so `LLMConfig` can validate them cheaply).

Defaults follow papers/000 appendix C (REFERENCE.md section 5): GCG with N = 10 attack tokens,
T = 10 iterations, B = 128 candidates from the top-k = 256 substitutions per position; RandomToken
with the same forward-pass budget, B x T = 1280 tries.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Insertion = Literal["task", "end"]


class AttackConfigError(ValueError):
    """An attack parameter that cannot be used; the message names the fix."""


@dataclass(frozen=True)
class GCGConfig:
    """Greedy coordinate gradient for classification (Zou et al. 2023, Algorithm 1; papers/000 App. C).

    Attributes:
        n_attack_tokens: N, the length of the adversarial token block.
        n_iterations: T, optimisation steps.
        n_candidates: B, single-token substitutions evaluated per iteration.
        top_k: k, substitutions kept per position from the one-hot gradient.
        insertion: "task" puts the block where the task says (PasswordMatch: before its closing
            separator), "end" appends it after the whole prompt.
        init_token: text whose first token fills the block at the start ("!" as in Zou et al.).
        filter_retokenization: drop candidates whose block changes under decode/re-encode.
        candidate_batch_size: candidates per forward pass (None: all B at once).
        prefix_cache: reuse the keys/values of the shared prompt prefix (needs a decoder with a
            `score` head, e.g. GPT-NeoX); False recomputes the whole prompt per candidate.
        early_stop: stop once the best candidate flips the prediction (the paper runs all T).
    """

    n_attack_tokens: int = 10
    n_iterations: int = 10
    n_candidates: int = 128
    top_k: int = 256
    insertion: Insertion = "task"
    init_token: str = "!"
    filter_retokenization: bool = True
    candidate_batch_size: int | None = None
    prefix_cache: bool = True
    early_stop: bool = False

    def __post_init__(self) -> None:
        _positive(self, "n_attack_tokens", "n_iterations", "n_candidates", "top_k")
        if self.candidate_batch_size is not None and self.candidate_batch_size < 1:
            raise AttackConfigError("candidate_batch_size must be >= 1 or null (all candidates in one batch)")
        _check_insertion(self.insertion)

    @property
    def forward_budget(self) -> int:
        """Candidate forward passes per example: B x T (papers/000 App. C)."""
        return self.n_candidates * self.n_iterations


@dataclass(frozen=True)
class RandomTokenConfig:
    """RandomToken (papers/000 App. C, Algorithm 1): fresh uniform tokens per try, stop at first success.

    Attributes:
        n_attack_tokens: N, the length of the random token block.
        n_queries: tries (one forward pass each); 1280 = GCG's B x T.
        insertion: as for GCG.
        batch_size: tries evaluated per forward pass; the budget is still counted try by try.
    """

    n_attack_tokens: int = 10
    n_queries: int = 1280
    insertion: Insertion = "task"
    batch_size: int = 128

    def __post_init__(self) -> None:
        _positive(self, "n_attack_tokens", "n_queries", "batch_size")
        _check_insertion(self.insertion)


ATTACK_CONFIGS: dict[str, type] = {"gcg": GCGConfig, "random_token": RandomTokenConfig}


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < 1:
            raise AttackConfigError(f"{type(cfg).__name__}.{name} must be >= 1, got {getattr(cfg, name)}")


def _check_insertion(value: str) -> None:
    if value not in ("task", "end"):
        raise AttackConfigError(f"insertion must be 'task' or 'end', got {value!r}")


def build_attack_config(name: str, params: dict[str, Any]) -> Any:
    """The frozen config of attack ``name``; a misspelled parameter is an error that lists the valid ones."""
    if name not in ATTACK_CONFIGS:
        raise AttackConfigError(f"unknown LLM attack {name!r}; available: {', '.join(sorted(ATTACK_CONFIGS))}")
    cls = ATTACK_CONFIGS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise AttackConfigError(f"{name} has no parameter(s) {unknown}; valid: {', '.join(sorted(fields))}")
    return cls(**params)


def matching_random_token(gcg: GCGConfig, *, batch_size: int = 128) -> RandomTokenConfig:
    """RandomToken with GCG's forward-pass budget (B x T tries), as papers/000 App. C compares them."""
    return RandomTokenConfig(n_attack_tokens=gcg.n_attack_tokens, n_queries=gcg.forward_budget,
                             insertion=gcg.insertion, batch_size=batch_size)
