"""Access to NVML (``pynvml``, package ``nvidia-ml-py``, extra ``robustperf[gpu]``), shared by the NVML meters.

``pynvml`` is imported lazily. NVML ignores ``CUDA_VISIBLE_DEVICES`` (REFERENCE.md section 3), so a logical
CUDA device is matched to its NVML handle by UUID where torch can tell it, else through the variable.
"""

from __future__ import annotations

import os
from typing import Any

from robustperf.cost.meters.base import EnergyMeterError


def import_pynvml() -> Any:
    """Import ``pynvml`` (from ``nvidia-ml-py``) or explain how to install it."""
    try:
        import pynvml
    except ImportError as exc:
        raise EnergyMeterError(
            "energy meter 'nvml' needs the NVIDIA management library bindings: pip install 'robustperf[gpu]' "
            "(nvidia-ml-py), or set cost.energy_meter=none"
        ) from exc
    return pynvml


def nvml_init(pynvml: Any) -> None:
    """``nvmlInit`` with a message that names the fix when there is no driver or GPU."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise EnergyMeterError(
            f"NVML could not start ({exc}): no NVIDIA driver or GPU here; use cost.energy_meter=none (or fake in tests)"
        ) from exc


def visible_device_id(device_index: int, visible: str | None) -> int | str:
    """The NVML identity (physical index or UUID) of logical CUDA device ``device_index``.

    NVML enumerates every GPU on the node and ignores ``CUDA_VISIBLE_DEVICES``
    (REFERENCE.md section 3), so logical index 0 under ``CUDA_VISIBLE_DEVICES=3``
    is NVML index 3. Entries may be indices or UUIDs (``GPU-...``).

    Args:
        device_index: the logical CUDA index the process uses (``cuda:N``).
        visible: the value of ``CUDA_VISIBLE_DEVICES`` (None when unset).

    Returns:
        An int physical index, or a UUID string.
    """
    if visible is None or visible.strip() == "":
        return device_index
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if device_index >= len(entries):
        raise EnergyMeterError(
            f"cuda:{device_index} is not among CUDA_VISIBLE_DEVICES={visible!r}; pick a device index < {len(entries)}"
        )
    entry = entries[device_index]
    if entry.startswith("MIG-"):
        raise EnergyMeterError(
            f"device {entry} is a MIG slice; NVML reports energy per physical GPU only - use cost.energy_meter=none"
        )
    return int(entry) if entry.isdigit() else entry


def _torch_uuid(device_index: int) -> str | None:
    """UUID of a logical CUDA device as torch sees it (exact even with CUDA_DEVICE_ORDER quirks)."""
    import sys

    torch = sys.modules.get("torch")  # only if the caller already imported torch; never import it here
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        uuid = str(torch.cuda.get_device_properties(device_index).uuid)
    except (RuntimeError, AttributeError, AssertionError):
        return None
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def nvml_handle(pynvml: Any, device_index: int | None) -> Any:
    """The NVML handle of a logical CUDA device, matched by UUID where possible."""
    index = 0 if device_index is None else device_index
    uuid = _torch_uuid(index)
    ident: int | str = uuid if uuid is not None else visible_device_id(index, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if isinstance(ident, str) and ident.startswith("MIG-"):
        raise EnergyMeterError(f"cuda:{index} is a MIG slice ({ident}); NVML meters whole GPUs only - use none")
    if isinstance(ident, str):
        return pynvml.nvmlDeviceGetHandleByUUID(ident)
    return pynvml.nvmlDeviceGetHandleByIndex(ident)
