"""Devices: turn a config's device name into a `torch.device`, and wait for one to finish its work.

Defined once for the training loop, the LLM pipeline, evaluation, attacks and the benchmarks.
"""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A configured device that does not exist here; the message names the fix."""


def resolve_device(name: str, *, local_rank: int = 0, setting: str = "runtime.device") -> torch.device:
    """"auto" -> this process's GPU if CUDA is available, else CPU; "cuda" -> this process's GPU.

    Args:
        name: "auto", "cpu", "cuda" or "cuda:N" (any `torch.device` string).
        local_rank: which GPU "auto"/"cuda" mean (the process's rank on its node; 0 outside DDP).
        setting: the config key the name came from, for the error message.

    Raises:
        DeviceError: a CUDA device was asked for and CUDA is not available.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{setting}={name!r} but CUDA is not available: use {setting}=cpu or auto")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timing a GPU without it measures the launch, not the work)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


__all__ = ["DeviceError", "resolve_device", "synchronize"]
