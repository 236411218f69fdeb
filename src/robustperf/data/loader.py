"""The training loader: seeded, sharded, mixed real + synthetic batches, augmented on the device, resumable.

Each batch holds ``batch_size - n_syn`` real and ``n_syn = round(synthetic_fraction * batch_size)``
synthetic samples (Wang et al. 2023 mix 70 % synthetic into every batch; REFERENCE.md section 1). Real
data is walked epoch by epoch (`EpochSampler`); synthetic data is walked once in a seeded order across
epochs (`SinglePassSampler`). One epoch is one pass over this rank's share of the real set (over the
synthetic set when the fraction is 1). `data.batch_size` is per process; DDP ranks shard the indices.

`state_dict()` holds the epoch, the batch index in it and both samplers' cursors, so a run stopped after
k batches continues with batch k + 1 exactly as an uninterrupted run would have produced it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from robustperf.config import DataConfig
from robustperf.data.augment import augment
from robustperf.data.bundle import DataBundle, _unwrap
from robustperf.data.datasets import ArrayDataset, gather, resize_of, to_unit
from robustperf.data.samplers import EpochSampler, SinglePassSampler, derive_seed


class TrainLoader:
    """Iterates (x, y) batches on `device`: x float (B, C, H, W) in [0, 1], augmented; y long (B,).

    Args:
        train: the real training set.
        synthetic: a synthetic set to mix in, or None.
        batch_size: samples per batch on this process.
        synthetic_fraction: share of each batch drawn from `synthetic`.
        augmentation: "none" or "crop_flip".
        seed: seeds the shuffles and the augmentation.
        device: where batches are delivered.
        rank: this process's rank (DDP).
        world_size: number of processes.
    """

    def __init__(self, train: Any, synthetic: Any | None, *, batch_size: int, synthetic_fraction: float,
                 augmentation: str, seed: int, device: torch.device | str, rank: int = 0,
                 world_size: int = 1) -> None:
        self.train, self.synthetic = train, synthetic
        self.batch_size = batch_size
        self.n_syn = round(synthetic_fraction * batch_size) if synthetic is not None else 0
        self.n_real = batch_size - self.n_syn
        self.augmentation = augmentation
        self.seed, self.rank = seed, rank
        self.device = torch.device(device)
        self._placed = self.device.type != "cuda"
        self.real = EpochSampler(len(train), seed=derive_seed(seed, 1), rank=rank, world_size=world_size)
        self.syn: SinglePassSampler | None = None
        if synthetic is not None and self.n_syn > 0:
            self.syn = SinglePassSampler(len(synthetic), seed=derive_seed(seed, 2), rank=rank, world_size=world_size)
        self.epoch = 0
        self.batch = 0

    def __len__(self) -> int:
        """Batches per epoch (the last one may be smaller)."""
        if self.n_real == 0:
            assert self.syn is not None
            return math.ceil(len(self.syn) / self.batch_size)
        return math.ceil(len(self.real) / self.n_real)

    @property
    def samples_per_epoch(self) -> int:
        """Samples (real + synthetic) this process sees per epoch."""
        if self.n_real == 0:
            assert self.syn is not None
            return len(self.syn)
        full, rest = divmod(len(self.real), self.n_real)
        return full * self.batch_size + rest + self._syn_count(rest) if rest else full * self.batch_size

    def _syn_count(self, n_real: int) -> int:
        """Synthetic samples to pair with `n_real` real ones (the same ratio in a short last batch)."""
        if self.n_syn == 0 or n_real == self.n_real:
            return self.n_syn
        return round(n_real * self.n_syn / self.n_real)

    def set_epoch(self, epoch: int) -> None:
        """Go to the start of `epoch`, unless already in it (keeps a resumed mid-epoch position)."""
        if epoch != self.epoch:
            self.epoch, self.batch = epoch, 0
            self.real.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The rest of the current epoch's batches (all of them after `set_epoch` to a new epoch)."""
        if not self._placed:
            # a CIFAR-sized set (150 MB of uint8) moves to the GPU once; batches are then gathered there
            self.train, self.synthetic = _on_device(self.train, self.device), _on_device(self.synthetic, self.device)
            self._placed = True
        # an exhausted epoch yields nothing until set_epoch moves on: a run resumed from a checkpoint taken
        # after the epoch's last batch must not train on an extra one
        while self.batch < len(self):
            yield self._next_batch()

    def _indices(self) -> tuple[Tensor, Tensor | None]:
        if self.n_real == 0:
            assert self.syn is not None
            k = min(self.batch_size, len(self.syn) - self.batch * self.batch_size)
            return torch.empty(0, dtype=torch.long), self.syn.take(k)
        real = self.real.take(self.n_real)
        syn = self.syn.take(self._syn_count(len(real))) if self.syn is not None else None
        return real, syn

    def _next_batch(self) -> tuple[Tensor, Tensor]:
        real_idx, syn_idx = self._indices()
        parts = []
        if len(real_idx):
            parts.append(self._load(self.train, real_idx))
        if syn_idx is not None and len(syn_idx):
            parts.append(self._load(self.synthetic, syn_idx))
        x = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        y = torch.cat([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        gen = torch.Generator(device=self.device).manual_seed(derive_seed(self.seed, 3, self.epoch, self.batch,
                                                                           self.rank))
        self.batch += 1  # counted before the yield: a state saved after this batch resumes at the next one
        return augment(self.augmentation, x, gen), y

    def _load(self, dataset: Any, idx: Tensor) -> tuple[Tensor, Tensor]:
        base, base_idx = _unwrap(dataset, idx)
        x, y = gather(base, base_idx)
        if x.device != self.device and self.device.type == "cuda":
            x, y = x.pin_memory(), y.pin_memory()
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        return to_unit(x, resize_of(base)), y

    def state_dict(self) -> dict[str, Any]:
        """Epoch, batch index and sampler cursors (plain ints; safe for ``weights_only`` checkpoints)."""
        return {"epoch": self.epoch, "batch": self.batch, "real": self.real.state_dict(),
                "synthetic": self.syn.state_dict() if self.syn is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where `state` stopped."""
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self.real.load_state_dict(state["real"])
        if (state.get("synthetic") is None) != (self.syn is None):
            raise ValueError("loader state and this loader disagree on whether synthetic data is mixed in")
        if self.syn is not None:
            self.syn.load_state_dict(state["synthetic"])


DEVICE_CACHE_BYTES = 4 * 2**30  # in-memory sets up to this size are moved to the GPU once


def _on_device(dataset: Any, device: torch.device) -> Any:
    """The data set moved to `device` when it is an in-memory array set small enough; else unchanged."""
    if isinstance(dataset, ArrayDataset) and (dataset.in_memory_bytes or DEVICE_CACHE_BYTES + 1) <= DEVICE_CACHE_BYTES:
        return dataset.to(device)
    return dataset


def make_train_loader(bundle: DataBundle, cfg: DataConfig, *, seed: int, device: torch.device | str,
                      rank: int = 0, world_size: int = 1) -> TrainLoader:
    """The run's training loader (see `TrainLoader`); `cfg.batch_size` is per process."""
    fraction = cfg.synthetic_fraction if bundle.synthetic is not None else 0.0
    return TrainLoader(bundle.train, bundle.synthetic, batch_size=cfg.batch_size, synthetic_fraction=fraction,
                       augmentation=cfg.augmentation, seed=seed, device=device, rank=rank, world_size=world_size)
