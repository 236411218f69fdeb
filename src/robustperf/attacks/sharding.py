"""Split the AutoAttack cascade's batches across processes, merged to exactly one process's verdicts.

The cascade forms the batches of a stage from the points still robust when the stage starts, in index
order, and every attack seeds its own generator per call; a batch's result therefore depends on the batch
alone. A `Shard` lets rank ``r`` of ``world_size`` attack batches ``r, r + world_size, ...`` of each stage;
at the stage's end the ranks exchange what they fooled (`exchange`, an all-gather), so every rank starts
the next stage with the same flags a single process would hold and the cascade ends with the same
per-point verdicts and adversarial examples. Each rank writes its own progress file next to the others
(``autoattack_state.rank<r>.json``) and the adversarial examples of its batches; a restarted evaluation,
with any number of ranks, reads every progress file and skips what any rank did.

`process_group_shard` builds a Shard over ``torch.distributed`` (gloo on CPU, NCCL on GPU); the exchanged
records travel as Python objects (only the fooled points' tensors, on the CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Exchange = Callable[[list[tuple[str, Any]]], list[tuple[str, Any]]]


@dataclass(frozen=True)
class Shard:
    """This process's share of a cascade: rank, world size and the all-gather that merges the shares."""

    rank: int
    world_size: int
    exchange: Exchange

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"shard rank {self.rank} is outside 0..{self.world_size - 1}")

    def owns(self, batch: int) -> bool:
        """Whether this rank attacks batch `batch` of a stage (round robin)."""
        return batch % self.world_size == self.rank


def process_group_shard() -> Shard | None:
    """A Shard over the initialised default process group (None: no group, or a group of one)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    world = dist.get_world_size()

    def exchange(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, items)
        return [item for part in gathered for item in part]

    return Shard(dist.get_rank(), world, exchange)


__all__ = ["Shard", "process_group_shard"]
