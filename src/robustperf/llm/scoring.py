"""Forward passes of a sequence classifier over token-id sequences, with an optional shared-prefix cache.

`classify` runs padded batches (right padding, pooled at each sequence's last real token). `PromptScorer`
serves the attacks: all candidates of one prompt share the prompt's prefix, so its keys/values are
computed once and expanded over the candidate batch (decoders with a ``score`` head, e.g. GPT-NeoX,
Llama, GPT-2); other models fall back to full forwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA when asked; a no-op otherwise (CPU runs stay fp32)."""
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def split_head(model: Any) -> tuple[Any, Any] | None:
    """(body, head) of a decoder classifier whose head is ``model.score``; None for other heads."""
    head = getattr(model, "score", None)
    body = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if head is None or body is None or not isinstance(head, torch.nn.Module):
        return None
    return body, head


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


def classifier_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Logits pooled at each row's last real token (right padding), whatever the pad token is."""
    parts = split_head(model)
    if parts is None:
        return model(input_ids=ids, attention_mask=mask).logits
    body, head = parts
    hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, d)
    last = mask.sum(dim=1) - 1
    return head(hidden[torch.arange(ids.shape[0], device=ids.device), last])


@torch.no_grad()
def classify(model: Any, seqs: Sequence[Sequence[int]], *, pad_id: int, device: torch.device,
             batch_size: int = 32, precision: str = "fp32") -> torch.Tensor:
    """Logits (n, n_labels) of token sequences, in padded batches; float32 on CPU."""
    out = []
    for start in range(0, len(seqs), batch_size):
        ids, mask = pad_batch(seqs[start : start + batch_size], pad_id, device)
        with autocast_context(device, precision):
            out.append(classifier_logits(model, ids, mask).float().cpu())
    return torch.cat(out) if out else torch.empty(0, 0)


def _chunks(n: int, size: int | None) -> Iterator[slice]:
    step = n if size is None else max(1, size)
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


@dataclass
class PromptScorer:
    """Scores attack blocks for one prompt: ``prefix + block + closing`` (ids on ``device``).

    Args:
        model: the classifier (eval mode; its parameters are not touched).
        prefix: (P,) ids before the block.
        closing: (C,) ids after the block (PasswordMatch's separator; often empty).
        use_cache: compute the prefix keys/values once and reuse them for every candidate.
        precision: "bf16" autocasts on CUDA.
    """

    model: Any
    prefix: torch.Tensor
    closing: torch.Tensor
    use_cache: bool = True
    precision: str = "fp32"

    def __post_init__(self) -> None:
        # (body, head) and the prefix's per-layer (keys, values); Any because both are None-able by design
        self._parts: Any = split_head(self.model)
        self._layers: Any = None
        if self.use_cache and self._parts is not None and len(self.prefix) > 0:
            self._layers = self._prefix_layers()

    @property
    def device(self) -> torch.device:
        return self.prefix.device

    @property
    def cached(self) -> bool:
        return self._layers is not None

    @torch.no_grad()
    def _prefix_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        body, _ = self._parts
        with autocast_context(self.device, self.precision):
            cache = body(input_ids=self.prefix[None], use_cache=True).past_key_values
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _cache(self, batch: int) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache()
        for i, (k, v) in enumerate(self._layers):
            # expand() is a view; the first update stores it and later updates concatenate into new tensors
            cache.update(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1), i)
        return cache

    def _logits_from_embeds(self, embeds: torch.Tensor) -> torch.Tensor:
        """Logits of (B, L, d) embeddings of ``block + closing`` (the prefix comes from the cache)."""
        if self._layers is not None:
            body, head = self._parts
            hidden = body(inputs_embeds=embeds, past_key_values=self._cache(embeds.shape[0])).last_hidden_state
            return head(hidden[:, -1])
        emb = self.model.get_input_embeddings()
        full = torch.cat([emb(self.prefix)[None].expand(embeds.shape[0], -1, -1), embeds], dim=1)
        if self._parts is not None:
            body, head = self._parts
            return head(body(inputs_embeds=full).last_hidden_state[:, -1])
        return self.model(inputs_embeds=full).logits

    def _logits_from_ids(self, blocks: torch.Tensor) -> torch.Tensor:
        tail = torch.cat([blocks, self.closing[None].expand(blocks.shape[0], -1)], dim=1)
        if self._layers is not None:
            body, head = self._parts
            hidden = body(input_ids=tail, past_key_values=self._cache(blocks.shape[0])).last_hidden_state
            return head(hidden[:, -1])
        full = torch.cat([self.prefix[None].expand(blocks.shape[0], -1), tail], dim=1)
        mask = torch.ones_like(full)
        return classifier_logits(self.model, full, mask)

    @torch.no_grad()
    def logits(self, blocks: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """Logits (B, n_labels), float32, of B candidate blocks (B, N), ``batch_size`` at a time."""
        out = []
        for sl in _chunks(blocks.shape[0], batch_size):
            with autocast_context(self.device, self.precision):
                out.append(self._logits_from_ids(blocks[sl]).float())
        return torch.cat(out)

    def loss_and_grad(self, block: torch.Tensor, target: int) -> tuple[float, torch.Tensor]:
        """CE toward ``target`` and its gradient w.r.t. the one-hot block (N, V) (Zou et al. 2023, Alg. 1)."""
        emb = self.model.get_input_embeddings()
        weight = emb.weight
        one_hot = torch.zeros(block.shape[0], weight.shape[0], device=self.device, dtype=weight.dtype)
        one_hot.scatter_(1, block[:, None], 1.0)
        one_hot.requires_grad_(True)
        with autocast_context(self.device, self.precision):
            embeds = torch.cat([one_hot @ weight, emb(self.closing)], dim=0)[None]
            logits = self._logits_from_embeds(embeds).float()
        loss = F.cross_entropy(logits, torch.tensor([target], device=self.device))
        (grad,) = torch.autograd.grad(loss, one_hot)
        return float(loss.detach()), grad.float()

    @property
    def length(self) -> int:
        """Tokens of the prompt without the block."""
        return int(self.prefix.numel() + self.closing.numel())
