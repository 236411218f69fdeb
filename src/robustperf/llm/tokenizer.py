"""An offline tokenizer for the random-init models: byte-level BPE trained on the word list.

Byte-level BPE (as Pythia's) makes GCG's decode/re-encode check meaningful: some token blocks decode to
text that re-encodes differently (merges across token boundaries), and those candidates are dropped.
Pythia conventions: ``<|endoftext|>`` is both EOS and pad, padding on the right (REFERENCE.md section 5).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from robustperf.llm.tasks import PASSWORD_TEMPLATE, WORD_LENGTH_TEMPLATE, bundled_words

logger = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"


def _training_corpus(words: Iterable[str]) -> list[str]:
    # The task templates are repeated so BPE learns their words as single tokens, as a tokenizer trained
    # on real text would (keeps prompts short: ~35 tokens for PasswordMatch instead of ~90).
    templates = [PASSWORD_TEMPLATE.format(password="x"), WORD_LENGTH_TEMPLATE.format(first="x", second="y")]
    return [*templates * 50, *(f" {w}" for w in words), *words, "\n---\n" * 50]


def build_bpe_tokenizer(vocab_size: int = 2048, words: Iterable[str] | None = None) -> Any:
    """A `PreTrainedTokenizerFast` (byte-level BPE, EOS = pad, right padding) trained on ``words``.

    Deterministic for a given word list and vocabulary size.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TOKEN], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_training_corpus(words or bundled_words()), trainer=trainer)
    return wrap_tokenizer(PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN))


def wrap_tokenizer(tokenizer: Any) -> Any:
    """Apply Pythia's conventions: pad = EOS (added if missing), right padding.

    A tokenizer that has its own pad token but no EOS (BERT-style encoders) keeps its pad token: adding
    a token would index past the model's embedding matrix.
    """
    if tokenizer.eos_token is None and tokenizer.pad_token is not None:
        tokenizer.padding_side = "right"
        return tokenizer
    if tokenizer.eos_token is None:
        tokenizer.add_special_tokens({"eos_token": EOS_TOKEN})
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_tokenizer(path: str | Path) -> Any:
    """A tokenizer saved with ``save_pretrained`` (a run directory's ``tokenizer/`` or a model directory)."""
    from transformers import AutoTokenizer

    return wrap_tokenizer(AutoTokenizer.from_pretrained(str(path)))


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def special_ends(tokenizer: Any) -> tuple[list[int], list[int]]:
    """(leading, trailing) special ids the model expects around one sequence: ([CLS], [SEP]) for BERT-style
    encoders, ([], []) for Pythia and the offline BPE (they add nothing)."""
    plain = encode(tokenizer, "a")
    full = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    for k in range(len(full) - len(plain) + 1):
        if full[k : k + len(plain)] == plain:
            return full[:k], full[k + len(plain) :]
    return [], []


def encode_sequence(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a whole example as the classifier sees it (special tokens around it, if the model uses any)."""
    lead, trail = special_ends(tokenizer)
    return [*lead, *encode(tokenizer, text), *trail]


def allowed_token_ids(tokenizer: Any) -> list[int]:
    """Tokens an attack may use: not special, and decoding to printable ASCII (as nanoGCG's filter)."""
    special = set(tokenizer.all_special_ids)
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])  # one call: fast for 50k vocabularies
    return [i for i, text in enumerate(texts) if i not in special and text and text.isascii() and text.isprintable()]
