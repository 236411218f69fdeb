"""A mini Pythia suite: GPT-NeoX shapes pretrained as causal LMs on a local corpus, checkpoints along the way.

papers/000 fine-tunes *pretrained* Pythia models. A random-init classifier trained only on the label of
PasswordMatch has to discover a token-matching circuit from one bit per example, and it stalls at about
0.8 accuracy (docs/llm_classifiers.md has the experiments). Language-model pretraining on text in which
words recur gives the model copying (induction) heads for free, as the Pile does for Pythia; fine-tuning
then only has to read them out.

`pretrain` trains one shape for a fixed token budget on packed sequences of a corpus (any local text
files, or the generated corpus below) and saves Hugging Face directories at Pythia-like steps (0, then
powers of two, then every ``checkpoint_every`` steps, then the last), each loadable as a classifier with
``model.source=local`` and ``model.path=<dir>`` (``<size>/final`` is the last one). Everything is seeded: the same config gives the same
weights.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from robustperf.config import ConfigError, apply_overrides
from robustperf.llm.tasks import bundled_words, load_words

logger = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CorpusConfig(_Section):
    """Pretraining text: the generated word corpus, or local text files (UTF-8)."""

    source: Literal["generated", "files"] = "generated"
    paths: tuple[str, ...] = Field((), description="files: text files (or directories of *.txt) to read")
    n_documents: int = Field(4000, ge=1, description="generated: documents of about doc_words words each")
    doc_words: int = Field(120, ge=8)
    repeat_prob: float = Field(0.2, ge=0, lt=1, description="generated: chance that the next words repeat an earlier span")
    words_path: str | None = Field(None, description="generated: word list (default: the bundled one)")

    @model_validator(mode="after")
    def _paths_for_files(self) -> CorpusConfig:
        if self.source == "files" and not self.paths:
            raise ValueError("corpus.source=files needs corpus.paths (text files or directories of .txt files)")
        return self


class PretrainConfig(_Section):
    """One pretraining suite: every size in ``sizes`` on the same corpus, tokens and schedule."""

    name: str = "mini-pythia"
    sizes: tuple[str, ...] = Field(("neox-tiny", "neox-small", "neox-medium"), min_length=1,
                                   description="names from robustperf.llm.models.NEOX_SHAPES")
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    tokenizer_vocab_size: int = Field(2048, ge=300)
    seq_len: int = Field(128, ge=8, description="tokens per packed training sequence")
    batch_size: int = Field(16, ge=1)
    n_tokens: int = Field(2_000_000, ge=1, description="token budget per size (steps = n_tokens / (batch x seq_len))")
    lr: float = Field(1e-3, gt=0, description="peak lr; linear warm-up then cosine decay to lr/10 (as Pythia)")
    warmup_steps: int = Field(50, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    checkpoint_every: int = Field(1000, ge=1, description="after the log-spaced early ones (Pythia: every 1000 steps)")
    seed: int = 0

    @property
    def n_steps(self) -> int:
        return max(1, self.n_tokens // (self.batch_size * self.seq_len))

    def checkpoint_steps(self) -> list[int]:
        """0, 1, 2, 4, ... below ``checkpoint_every``, then its multiples, then the last step (Pythia's scheme)."""
        steps = {0, self.n_steps}
        p = 1
        while p < min(self.checkpoint_every, self.n_steps):
            steps.add(p)
            p *= 2
        steps.update(range(self.checkpoint_every, self.n_steps, self.checkpoint_every))
        return sorted(steps)


def load_pretrain_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PretrainConfig:
    """A `PretrainConfig` from YAML plus ``key=value`` overrides; errors name the bad key."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"pretrain config {str(p)!r} does not exist (see configs/llm_pretrain.yaml)")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"pretrain config {str(p)!r} must hold a mapping")
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        cfg = PretrainConfig.model_validate(data)
    except ValidationError as err:
        msgs = [f"{'.'.join(str(x) for x in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors()]
        raise ConfigError("invalid pretrain config:\n  " + "\n  ".join(msgs)) from None
    from robustperf.llm.models import NEOX_SHAPES

    unknown = [s for s in cfg.sizes if s not in NEOX_SHAPES]
    if unknown:
        raise ConfigError(f"unknown sizes {unknown}; available: {', '.join(NEOX_SHAPES)}")
    return cfg


# ---------------------------------------------------------------------------- corpus


_SEPARATORS = (" ", " ", " ", "\n", ", ", ". ", ": ", ' "', '" ')


def generated_documents(n_documents: int, *, doc_words: int, seed: int, repeat_prob: float = 0.2,
                        words: Sequence[str] | None = None) -> list[str]:
    """Documents of random words in which words recur, as names and topics do in real text.

    Each document draws a handful of topic words and mixes them with words from the whole list,
    separated by spaces, newlines, punctuation and quotes, and repeats a few earlier spans verbatim. The
    recurrence is what teaches a language model to copy (induction heads); nothing in it refers to
    the classification tasks.
    """
    pool = list(words or bundled_words())
    rng = random.Random(seed)
    docs = []
    for _ in range(n_documents):
        topic = rng.sample(pool, 6)
        out: list[str] = []
        while len(out) < doc_words:
            if len(out) > 8 and rng.random() < repeat_prob:  # repeat an earlier span verbatim
                start = rng.randrange(len(out) - 2)
                out.extend(out[start : start + rng.randint(2, 10)])
                continue
            out.append(rng.choice(topic) if rng.random() < 0.4 else rng.choice(pool))
        docs.append("".join(w + rng.choice(_SEPARATORS) for w in out))
    return docs


def file_documents(paths: Sequence[str]) -> list[str]:
    """The text of every file in ``paths`` (directories: their ``*.txt`` files, sorted)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(sorted(p.rglob("*.txt")))
        elif p.is_file():
            files.append(p)
        else:
            raise ConfigError(f"corpus path {raw!r} does not exist")
    docs = [f.read_text(encoding="utf-8", errors="ignore") for f in files]
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise ConfigError(f"corpus.paths {list(paths)} hold no text")
    return docs


def corpus_documents(cfg: CorpusConfig, *, seed: int) -> list[str]:
    if cfg.source == "files":
        return file_documents(cfg.paths)
    words = load_words(cfg.words_path) if cfg.words_path else None
    return generated_documents(cfg.n_documents, doc_words=cfg.doc_words, seed=seed, repeat_prob=cfg.repeat_prob,
                               words=words)


def pack(documents: Sequence[str], tokenizer: Any, seq_len: int) -> Any:
    """(n, seq_len) token tensor: documents joined by EOS and cut into full rows (the tail is dropped)."""
    import torch

    ids: list[int] = []
    for doc in documents:
        ids.extend(tokenizer(doc, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    n = len(ids) // seq_len
    if n == 0:
        raise ConfigError(f"the corpus has {len(ids)} tokens, fewer than one sequence of {seq_len}")
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


# ---------------------------------------------------------------------------- training


@dataclass(frozen=True)
class PretrainResult:
    """One size of the suite.

    Attributes:
        size: shape name.
        out_dir: directory holding ``step<N>/`` checkpoints (Hugging Face format) and ``metrics.jsonl``.
        n_params: parameters of the causal LM (embedding and unembedding included).
        n_steps: optimiser steps.
        n_tokens: tokens trained on.
        flops: 6 x tokens x params (Kaplan et al. 2020, as papers/000 counts).
        final_loss: mean LM loss over the last 50 steps.
        seconds: wall time.
        checkpoints: step -> directory.
    """

    size: str
    out_dir: Path
    n_params: int
    n_steps: int
    n_tokens: int
    flops: float
    final_loss: float
    seconds: float
    checkpoints: dict[int, Path]

    def summary(self) -> dict[str, Any]:
        return {"size": self.size, "n_params": self.n_params, "n_steps": self.n_steps, "n_tokens": self.n_tokens,
                "flops": self.flops, "final_loss": self.final_loss, "seconds": self.seconds,
                "checkpoints": {str(k): str(v) for k, v in self.checkpoints.items()}}


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak (Pythia's schedule)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.n_steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def causal_lm(size: str, *, vocab_size: int, eos_id: int, max_length: int, seed: int) -> Any:
    """A seeded random-init `GPTNeoXForCausalLM` of shape ``size``."""
    import torch
    from transformers import GPTNeoXForCausalLM

    from robustperf.llm.models import neox_config

    cfg = neox_config(size, vocab_size=vocab_size, pad_token_id=eos_id, max_length=max_length)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPTNeoXForCausalLM(cfg)


def pretrain_size(cfg: PretrainConfig, size: str, tokenizer: Any, data: Any, out_dir: str | Path, *,
                  on_log: Callable[[dict[str, Any]], None] | None = None) -> PretrainResult:
    """Pretrain one shape on ``data`` ((n, seq_len) token rows) for ``cfg.n_steps``, checkpointing as Pythia."""
    import torch
    import torch.nn.functional as F

    from robustperf.llm.models import count_parameters
    from robustperf.store.io import append_jsonl, write_json_atomic

    out = Path(out_dir) / size
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    model = causal_lm(size, vocab_size=len(tokenizer), eos_id=tokenizer.eos_token_id,
                      max_length=max(cfg.seq_len, 2048), seed=cfg.seed)
    n_params = count_parameters(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(cfg.seed)
    save_at = set(cfg.checkpoint_steps())
    checkpoints: dict[int, Path] = {}
    losses: list[float] = []
    order: list[int] = []
    start = time.perf_counter()
    model.train()
    for step in range(cfg.n_steps + 1):
        if step in save_at:
            checkpoints[step] = _save(model, tokenizer, out / f"step{step}")
        if step == cfg.n_steps:
            break
        if len(order) < cfg.batch_size:
            order += torch.randperm(data.shape[0], generator=gen).tolist()
        rows, order = order[: cfg.batch_size], order[cfg.batch_size :]
        batch = data[rows]  # (B, T)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        logits = model(input_ids=batch).logits  # (B, T, V)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        if not torch.isfinite(loss):
            raise ConfigError(f"{size}: LM loss became {float(loss)} at step {step}; lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 50 == 0 or step + 1 == cfg.n_steps:
            row = {"size": size, "step": step + 1, "loss": sum(losses[-50:]) / len(losses[-50:]),
                   "lr": lr_at(step, cfg), "tokens": (step + 1) * cfg.batch_size * cfg.seq_len,
                   "seconds": time.perf_counter() - start}
            append_jsonl(out / "metrics.jsonl", row)
            if on_log:
                on_log(row)
    _save(model, tokenizer, out / "final")  # as Pythia's "main" revision: configs point at <size>/final
    n_tokens = cfg.n_steps * cfg.batch_size * cfg.seq_len
    result = PretrainResult(size, out, n_params, cfg.n_steps, n_tokens, 6.0 * n_tokens * n_params,
                            sum(losses[-50:]) / max(1, len(losses[-50:])), time.perf_counter() - start, checkpoints)
    write_json_atomic(out / "pretrain.json", {"config": cfg.model_dump(mode="json"), **result.summary()})
    return result


def _save(model: Any, tokenizer: Any, path: Path) -> Path:
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def pretrain_suite(cfg: PretrainConfig, out_dir: str | Path, *,
                   on_log: Callable[[dict[str, Any]], None] | None = None) -> list[PretrainResult]:
    """Pretrain every size of ``cfg`` on the same tokenised corpus; returns one result per size."""
    from robustperf.llm.tokenizer import build_bpe_tokenizer

    tokenizer = build_bpe_tokenizer(cfg.tokenizer_vocab_size)
    docs = corpus_documents(cfg.corpus, seed=cfg.seed)
    data = pack(docs, tokenizer, cfg.seq_len)
    logger.info("corpus: %d documents, %d sequences of %d tokens; %d steps per size", len(docs), data.shape[0],
                cfg.seq_len, cfg.n_steps)
    return [pretrain_size(cfg, size, tokenizer, data, out_dir, on_log=on_log) for size in cfg.sizes]
