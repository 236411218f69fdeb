"""Per-row attack state: one row per (point, restart/target) run, dropped from every tensor at once.

APGD and FAB keep their active runs as rows of a few tensors; when a run succeeds or ends its row leaves
all of them together. A subclass lists its tensors in ``NAMES`` (and annotates them for readers).
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

import torch
from torch import Tensor

R = TypeVar("R", bound="Rows")


class Rows:
    """Tensors with one row per active run; a name given as None (not yet computed) is skipped."""

    NAMES: ClassVar[tuple[str, ...]] = ("pid",)
    pid: Tensor  # index of the point (in the attacked batch) each row belongs to

    def __init__(self, **tensors: Tensor | None) -> None:
        unknown = set(tensors) - set(self.NAMES)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no tensors {sorted(unknown)}")
        for name in self.NAMES:
            setattr(self, name, tensors.get(name))

    def keep(self, mask: Tensor) -> None:
        """Keep the rows where ``mask`` is True."""
        for name in self.NAMES:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[mask])

    def extend(self: R, other: R) -> None:
        """Append ``other``'s rows."""
        for name in self.NAMES:
            setattr(self, name, torch.cat([getattr(self, name), getattr(other, name)]))

    def __len__(self) -> int:
        return int(self.pid.shape[0])


__all__ = ["Rows"]
