"""Datasets that hand out whole batches: array-backed (in memory or memory-mapped) and image folders.

The training loader gathers a batch with one fancy-index (`get_batch`) instead of collating single items,
keeps uint8 pixels as uint8 until they are on the device (4x less host-to-device traffic), and converts
to float in [0, 1] there (`to_unit`). `__getitem__` still yields (x float CHW in [0, 1], y int) for code
that wants the plain torch Dataset protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset


class DataError(ValueError):
    """A data set that cannot be loaded as configured; the message names the fix."""


@runtime_checkable
class BatchDataset(Protocol):
    """A data set that can gather many samples at once (raw pixels, labels)."""

    def __len__(self) -> int: ...

    def get_batch(self, indices: Tensor) -> tuple[Tensor, Tensor]: ...


def to_unit(x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """Raw pixels -> float32 in [0, 1] (uint8 / 255; floats as they are), resized bilinearly if asked."""
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    return x


class ArrayDataset(Dataset[tuple[Tensor, int]]):
    """Images and labels held as arrays: a torch tensor, a numpy array or a read-only numpy memmap.

    Args:
        images: (N, C, H, W) or, with ``channels_last_storage``, (N, H, W, C); uint8 (0..255) or float
            (already in [0, 1]).
        labels: (N,) integer class labels.
        image_size: side length to resize to (bilinear) when it differs from the stored one.
        channels_last_storage: the array is NHWC (as CIFAR-style .npz synthetic sets usually are).
    """

    images: Any  # Tensor, ndarray, np.memmap or a lazy `_IndexedArray` over one

    def __init__(self, images: Tensor | np.ndarray, labels: Tensor | np.ndarray, *, image_size: int | None = None,
                 channels_last_storage: bool = False) -> None:
        if len(images) != len(labels):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        if images.ndim != 4:
            raise DataError(f"images must have 4 dimensions (N, C, H, W) or (N, H, W, C), got {tuple(images.shape)}")
        self.images = images
        self.labels = labels if isinstance(labels, Tensor) else torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.labels = self.labels.long()
        self.nhwc = channels_last_storage
        shape = tuple(images.shape[1:])
        self.stored_shape: tuple[int, int, int] = (shape[2], shape[0], shape[1]) if self.nhwc else shape  # type: ignore[assignment]
        self.size = (image_size, image_size) if image_size else None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the samples this data set yields."""
        c, h, w = self.stored_shape
        return (c, *self.size) if self.size else (c, h, w)

    def __len__(self) -> int:
        return len(self.labels)

    def get_batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Raw pixels (N, C, H, W) in storage dtype, and labels, for `indices` (any order).

        Tensors stay on the device the images are on (see `to`); array-backed data comes back on the CPU.
        """
        if isinstance(self.images, Tensor):
            idx = indices.to(self.images.device)
            x = self.images[idx]
        else:
            idx = indices.cpu()
            # numpy / memmap: sorted reads are much faster on disk; restore the requested order after
            order = np.argsort(idx.numpy(), kind="stable")
            x_sorted = np.ascontiguousarray(self.images[idx.numpy()[order]])
            x = torch.empty((len(idx), *x_sorted.shape[1:]), dtype=torch.from_numpy(x_sorted[:0]).dtype)
            x[torch.from_numpy(order)] = torch.from_numpy(x_sorted)
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        return x.contiguous(), self.labels[idx]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        x, y = self.get_batch(torch.tensor([int(index)]))
        return to_unit(x, self.size)[0], int(y[0])

    @property
    def in_memory_bytes(self) -> int | None:
        """Bytes of an in-memory (tensor) image store, or None for arrays on disk."""
        return self.images.numel() * self.images.element_size() if isinstance(self.images, Tensor) else None

    def to(self, device: torch.device | str) -> ArrayDataset:
        """A copy with images and labels on `device`, so batches are gathered there (no per-batch copy)."""
        if not isinstance(self.images, Tensor):
            raise DataError("only in-memory (tensor) data sets can be moved to a device")
        out = self.subset(torch.arange(0))  # cheap shell with the same metadata
        out.images, out.labels = self.images.to(device), self.labels.to(device)
        return out

    def subset(self, indices: Sequence[int] | Tensor) -> ArrayDataset:
        """A data set of the given samples (copied for in-memory arrays; memmaps stay on disk)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        if isinstance(self.images, Tensor):
            images: Any = self.images[idx]
        else:
            images = _IndexedArray(self.images, idx.numpy())
        out = ArrayDataset.__new__(ArrayDataset)
        out.images, out.labels, out.nhwc = images, self.labels[idx], self.nhwc
        out.stored_shape, out.size = self.stored_shape, self.size
        return out


class _IndexedArray:
    """A lazy view `base[indices]` of a (memory-mapped) array: reads happen only in `__getitem__`."""

    def __init__(self, base: Any, indices: np.ndarray) -> None:
        self.base = base
        self.indices = indices
        self.ndim = base.ndim
        self.shape = (len(indices), *base.shape[1:])
        self.dtype = base.dtype

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        return self.base[self.indices[idx]]


class FolderDataset(Dataset[tuple[Tensor, int]]):
    """ImageNet-style folder (one sub-folder per class) read with PIL and resized to `image_size`."""

    def __init__(self, root: str, image_size: int, *, num_workers: int = 0) -> None:
        from torchvision.datasets import ImageFolder
        from torchvision.transforms import v2

        transform = v2.Compose([v2.ToImage(), v2.Resize((image_size, image_size), antialias=True),
                                v2.ToDtype(torch.uint8, scale=True)])
        self.folder = ImageFolder(root, transform=lambda im: transform(im.convert("RGB")))
        self.size = (image_size, image_size)
        self.num_workers = num_workers
        self.classes = list(self.folder.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (3, *self.size)

    def __len__(self) -> int:
        return len(self.folder)

    def _load(self, index: int) -> tuple[Tensor, int]:
        x, y = self.folder[index]
        return x, int(y)

    def get_batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 (N, 3, S, S) and labels; decoding runs in `num_workers` threads (PIL releases the GIL)."""
        ids = [int(i) for i in indices.cpu()]
        if self.num_workers > 0:
            with ThreadPoolExecutor(self.num_workers) as pool:
                items = list(pool.map(self._load, ids))
        else:
            items = [self._load(i) for i in ids]
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.long)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        x, y = self._load(index)
        return to_unit(x), y


def gather(dataset: Any, indices: Tensor) -> tuple[Tensor, Tensor]:
    """Raw batch from any data set: `get_batch` when it has one, else stacked `__getitem__` items."""
    if isinstance(dataset, BatchDataset):
        return dataset.get_batch(indices)
    items = [dataset[int(i)] for i in indices]
    return torch.stack([torch.as_tensor(x) for x, _ in items]), torch.tensor([int(y) for _, y in items])


def resize_of(dataset: Any) -> tuple[int, int] | None:
    """The (H, W) a data set's raw batches must be resized to on the device, or None."""
    return getattr(dataset, "size", None) if isinstance(dataset, ArrayDataset) else None
