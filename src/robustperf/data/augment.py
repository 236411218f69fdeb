"""Batched augmentation on the device.

"crop_flip" is the standard CIFAR augmentation (random 32x32 crop of the image zero-padded by 4 pixels,
then a horizontal flip with probability 1/2; He et al. 2016, used by every paper in REFERENCE.md). It is
done for the whole batch with one gather on the device; the per-sample offsets come from a torch.Generator
seeded per batch, so a resumed run draws exactly the same crops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

AUGMENTATIONS = ("none", "crop_flip")


def crop_flip(x: Tensor, generator: torch.Generator, *, padding: int = 4) -> Tensor:
    """Random crop with `padding` zero pixels on every side plus random horizontal flip.

    Args:
        x: (B, C, H, W) images.
        generator: on x's device; draws 3 numbers per sample.
        padding: pixels of zero padding.

    Returns:
        (B, C, H, W) augmented images (a new tensor).
    """
    b, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    oy = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=dev)
    ox = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=dev)
    flip = torch.randint(0, 2, (b, 1), generator=generator, device=dev).bool()
    rows = oy + torch.arange(h, device=dev)  # (B, H)
    cols_fwd = torch.arange(w, device=dev).expand(b, w)
    cols = ox + torch.where(flip, cols_fwd.flip(1), cols_fwd)  # (B, W)
    batch = torch.arange(b, device=dev)[:, None, None]
    # advanced indices around a slice put their broadcast dims first: (B, H, W, C)
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def augment(name: str, x: Tensor, generator: torch.Generator) -> Tensor:
    """Apply the augmentation called `name` ("none" returns x)."""
    if name == "none":
        return x
    if name == "crop_flip":
        return crop_flip(x, generator)
    raise ValueError(f"unknown augmentation {name!r}; use one of {', '.join(AUGMENTATIONS)}")
