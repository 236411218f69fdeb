"""Checkpoints: atomic writes, the previous one kept, corrupt files detected and skipped.

``last.pt`` is written to a temp file, fsynced and ``os.replace``d into place after the old one has
been renamed to ``last.prev.pt`` (DESIGN.md, "Storage"). A kill -9 at any moment therefore leaves at
least one complete checkpoint. Loading uses ``torch.load(weights_only=True)``: checkpoints hold tensors
and plain Python data only, never pickled objects. A file that fails to load (truncated, overwritten)
is reported with a clear error in the log and the previous one is used instead.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustperf.store.io import refuse_links, write_bytes_atomic

log = logging.getLogger(__name__)

LAST = "last.pt"
PREVIOUS = "last.prev.pt"
BEST = "best.pt"


class CheckpointError(ValueError):
    """No usable checkpoint where one was expected; the message names the fix."""


def save_torch_atomic(path: str | Path, obj: Any) -> None:
    """``torch.save`` of `obj` (tensors and plain data) serialised in memory, then written atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint payload (a dict with a ``format`` key) atomically to `path`."""
    save_torch_atomic(path, payload)


def save_last(directory: str | Path, payload: dict[str, Any]) -> None:
    """Write ``last.pt``, keeping the one it replaces as ``last.prev.pt``.

    A payload without a ``config`` gets a copy of the run's ``config.json`` (the file beside `directory`,
    when it reads as an object), so `robustperf.store.repair.repair_run` can rebuild a damaged config.json.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    refuse_links(directory)  # a planted checkpoints link would move and write files somewhere else
    if "config" not in payload:
        config = _run_config(directory.parent / "config.json")
        if config is not None:
            payload = {**payload, "config": config}
    last = directory / LAST
    if last.exists():
        os.replace(last, directory / PREVIOUS)
    save_checkpoint(last, payload)


def _run_config(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, truncated or not a robustperf checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"checkpoint {path} is not a robustperf checkpoint (no 'format' key)")
    return payload


def load_latest(directory: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The newest loadable of ``last.pt`` and ``last.prev.pt``; None when neither exists.

    A corrupt newest checkpoint is logged as an error and the previous one is used.

    Raises:
        CheckpointError: checkpoints exist but none can be loaded.
    """
    directory = Path(directory)
    candidates = [directory / LAST, directory / PREVIOUS]
    existing = [p for p in candidates if p.exists()]
    if not existing:
        return None
    errors = []
    for path in existing:
        try:
            payload = load_checkpoint(path, map_location)
        except CheckpointError as exc:
            log.error("%s; falling back to the previous checkpoint", exc)
            errors.append(str(exc))
            continue
        if errors:
            log.warning("resuming from %s (step %s)", path, payload.get("progress", {}).get("step"))
        return payload
    raise CheckpointError(
        "no usable checkpoint: " + "; ".join(errors) + f". Delete {directory} or rerun with --no-resume to start over"
    )


# ------------------------------------------------------------------------------------------ RNG states


def rng_state() -> dict[str, Any]:
    """Global torch / CUDA / numpy / python RNG states as tensors and plain data (weights_only-safe)."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": _python_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
