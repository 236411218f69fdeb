"""RobustBench WideResNet checkpoints <-> robustperf's WideResNet, by state-dict key.

RobustBench's WRN (from TRADES) names its parts ``conv1``, ``block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,
convShortcut}``, ``bn1`` and ``fc``; robustperf's are ``stem``, ``blocks.{k}.{bn1,conv1,bn2,conv2,shortcut}``,
``bn`` and ``fc`` inside the `NormalizedModel` wrapper (``net.``). The blocks compute the same thing (the
projection shortcut reads the pre-activated input in both), so a checkpoint maps key for key. Checkpoints
come as ``{"state_dict": ...}`` or bare, with ``module.`` (DataParallel) or ``model.`` prefixes; the unused
``sub_block1`` of some is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

_BLOCK = re.compile(r"^block([123])\.layer\.(\d+)\.(.+)$")


class CheckpointMismatch(ValueError):
    """A checkpoint that does not fit the architecture; the message names the keys."""


def unwrap(checkpoint: Any) -> dict[str, Tensor]:
    """The state dict of a checkpoint, without ``module.`` / ``model.`` prefixes."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointMismatch(f"the checkpoint is a {type(checkpoint).__name__}, not a state dict")
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for prefix in ("module.", "model."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def from_robustbench(state: Mapping[str, Tensor], depth: int) -> dict[str, Tensor]:
    """RobustBench WRN keys -> robustperf WRN keys (``net.`` prefix of the wrapper included)."""
    n = (depth - 4) // 6
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("sub_block1."):
            continue  # built by RobustBench but never used in its forward
        m = _BLOCK.match(key)
        if m:
            group, i, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            new = f"blocks.{(group - 1) * n + i}.{rest.replace('convShortcut', 'shortcut')}"
        elif key.startswith("conv1."):
            new = "stem." + key[len("conv1."):]
        elif key.startswith("bn1."):
            new = "bn." + key[len("bn1."):]
        elif key.startswith("fc."):
            new = key
        else:
            raise CheckpointMismatch(f"unexpected key {key!r} in a RobustBench WideResNet checkpoint")
        out["net." + new] = value
    return out


def to_robustbench(state: Mapping[str, Tensor], depth: int) -> dict[str, Tensor]:
    """robustperf WRN keys -> RobustBench WRN keys (the wrapper's mean/std buffers are left out)."""
    n = (depth - 4) // 6
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not key.startswith("net."):
            continue
        key = key[len("net."):]
        if key.startswith("blocks."):
            _, k, rest = key.split(".", 2)
            group, i = divmod(int(k), n)
            out[f"block{group + 1}.layer.{i}.{rest.replace('shortcut', 'convShortcut')}"] = value
        elif key.startswith("stem."):
            out["conv1." + key[len("stem."):]] = value
        elif key.startswith("bn."):
            out["bn1." + key[len("bn."):]] = value
        else:
            out[key] = value
    return out


__all__ = ["CheckpointMismatch", "from_robustbench", "to_robustbench", "unwrap"]
