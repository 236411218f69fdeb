"""Resumable, shardable samplers.

Both samplers are pure functions of (seed, epoch or pass, position): a permutation is regenerated from
its seed rather than stored, so `state_dict()` is a few integers, and resuming continues with exactly the
next index. Sharding follows `torch.utils.data.DistributedSampler`: the permutation is padded (by
wrapping around) to a multiple of world_size and rank r takes every world_size-th index from r.

`SinglePassSampler` exists because training on tens of millions of synthetic images should see each
one once (REFERENCE.md section 1; papers/001 App. E shows what goes wrong when a resume restarts the
order): it walks one seeded permutation of the unique indices, and a resume never repeats a sample.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from several integers (numpy's SeedSequence mixes them well)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0]) >> 1


class _ShardedPermutation:
    """Shared machinery: the shard of a seeded permutation for one round (epoch or pass) and a cursor."""

    kind = "sampler"

    def __init__(self, n: int, *, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True) -> None:
        if n < 1:
            raise ValueError(f"{self.kind} needs a non-empty data set, got n={n}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.n, self.seed, self.rank, self.world_size, self.shuffle = n, seed, rank, world_size, shuffle
        self.round = 0
        self.position = 0
        self._cache: tuple[int, Tensor] | None = None

    def __len__(self) -> int:
        """Indices this rank visits per round (ceil(n / world_size), as DistributedSampler)."""
        return -(-self.n // self.world_size)

    def shard(self, round_: int) -> Tensor:
        """This rank's indices for a round, in order."""
        if self._cache is not None and self._cache[0] == round_:
            return self._cache[1]
        if self.shuffle:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, round_, 0x5A))
            perm = torch.randperm(self.n, generator=gen)
        else:
            perm = torch.arange(self.n)
        total = len(self) * self.world_size
        if total > self.n:  # pad by wrapping around so every rank gets the same count
            perm = torch.cat([perm, perm[: total - self.n]])
        out = perm[self.rank : total : self.world_size]
        self._cache = (round_, out)
        return out

    @property
    def remaining(self) -> int:
        """Indices left in the current round."""
        return len(self) - self.position

    def take(self, k: int) -> Tensor:
        """The next (up to) k indices of the current round; the cursor moves past them."""
        out = self.shard(self.round)[self.position : self.position + k]
        self.position += len(out)
        return out

    def __iter__(self) -> Any:
        while self.position < len(self):
            yield int(self.take(1)[0])

    def state_dict(self) -> dict[str, int]:
        """Plain integers: enough to continue with exactly the next index."""
        return {"n": self.n, "seed": self.seed, "rank": self.rank, "world_size": self.world_size,
                "round": self.round, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where `state` stopped; refuses a state from another data set, seed or sharding."""
        for key in ("n", "seed", "rank", "world_size"):
            if int(state[key]) != getattr(self, key):
                raise ValueError(f"{self.kind} state has {key}={state[key]} but this sampler has "
                                 f"{getattr(self, key)}: the data, seed or number of processes changed")
        self.round, self.position = int(state["round"]), int(state["position"])


class EpochSampler(_ShardedPermutation):
    """A fresh seeded shuffle each epoch; resumable mid-epoch (state: epoch and position)."""

    kind = "EpochSampler"

    @property
    def epoch(self) -> int:
        return self.round

    def set_epoch(self, epoch: int) -> None:
        """Move to `epoch` (its start), unless already in it (so a resumed position is kept)."""
        if epoch != self.round:
            self.round, self.position = epoch, 0


class SinglePassSampler(_ShardedPermutation):
    """Walks every unique index once in a seeded order; `take` continues into a new pass only when the
    current one is exhausted (logged), so a set larger than the run is never repeated."""

    kind = "SinglePassSampler"

    @property
    def passes(self) -> int:
        """Completed passes over the data."""
        return self.round

    def take(self, k: int) -> Tensor:
        parts, need = [], k
        while need > 0:
            if self.position >= len(self):
                self.round, self.position = self.round + 1, 0
                log.info("%s: pass %d over %d samples done; starting pass %d", self.kind, self.round, self.n,
                         self.round + 1)
            part = super().take(need)
            parts.append(part)
            need -= len(part)
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
