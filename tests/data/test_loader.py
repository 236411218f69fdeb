"""Training loader and samplers: exact mid-epoch resume, single pass without repeats, sharding, mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustperf.config import DataConfig
from robustperf.data import (
    ArrayDataset,
    EpochSampler,
    SinglePassSampler,
    TrainLoader,
    build_data,
    crop_flip,
    make_train_loader,
)


def _loader(n: int = 50, n_syn: int = 0, *, fraction: float = 0.0, seed: int = 0, rank: int = 0,
            world_size: int = 1, batch_size: int = 8, augmentation: str = "crop_flip") -> TrainLoader:
    # pixel value encodes the sample id, label = id, so batches reveal exactly which samples they hold
    real = ArrayDataset(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 6, 6).clone(),
                        torch.arange(n))
    syn = None
    if n_syn:
        syn = ArrayDataset(np.arange(n_syn, dtype=np.int64).reshape(n_syn, 1, 1, 1).repeat(36, 1).reshape(
            n_syn, 6, 6, 1).astype(np.uint8) if n_syn < 256 else np.zeros((n_syn, 6, 6, 1), np.uint8),
            1000 + np.arange(n_syn), channels_last_storage=True)
    return TrainLoader(real, syn, batch_size=batch_size, synthetic_fraction=fraction, augmentation=augmentation,
                       seed=seed, device="cpu", rank=rank, world_size=world_size)


def _run(loader: TrainLoader, epochs: range, stop_after: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        for x, y in loader:
            out.append((x, y))
            if stop_after is not None and len(out) == stop_after:
                return out
    return out


@pytest.mark.parametrize("stop_after", [1, 5, 9, 10, 26])
def test_resume_mid_epoch_gives_the_identical_batch_sequence(stop_after: int) -> None:
    full = _run(_loader(n_syn=30, fraction=0.25), range(3))  # 9 batches per epoch (6 real each)
    first = _loader(n_syn=30, fraction=0.25)
    head = _run(first, range(3), stop_after=stop_after)
    state = first.state_dict()
    second = _loader(n_syn=30, fraction=0.25)
    second.load_state_dict(state)
    tail = _run(second, range(state["epoch"], 3))
    got = head + tail
    assert len(got) == len(full) == 27
    for (xa, ya), (xb, yb) in zip(got, full, strict=True):
        torch.testing.assert_close(xa, xb)
        torch.testing.assert_close(ya, yb)


def test_epochs_cover_the_real_set_and_reshuffle() -> None:
    loader = _loader(n=50)
    assert len(loader) == 7 and loader.samples_per_epoch == 50
    epochs = [torch.cat([y for _, y in _run(loader, range(e, e + 1))]) for e in range(2)]
    for ys in epochs:
        assert sorted(ys.tolist()) == list(range(50))
    assert not torch.equal(epochs[0], epochs[1])
    # a different seed gives another order
    other = torch.cat([y for _, y in _run(_loader(n=50, seed=1), range(1))])
    assert not torch.equal(other, epochs[0])


def test_mixing_puts_round_fraction_times_batch_synthetic_samples_in_each_batch() -> None:
    loader = _loader(n=48, n_syn=100, fraction=0.7, batch_size=10, augmentation="none")
    batches = _run(loader, range(1))
    assert len(loader) == 16  # 48 real / 3 real per batch
    for x, y in batches:
        assert (y >= 1000).sum() == 7 and (y < 1000).sum() == 3
        # the synthetic NHWC images arrive as NCHW with their id as pixel value
        syn_ids = y[y >= 1000] - 1000
        torch.testing.assert_close(x[y >= 1000], (syn_ids.float() / 255).view(-1, 1, 1, 1).expand(-1, 1, 6, 6))
    assert loader.samples_per_epoch == 160
    syn_seen = torch.cat([y[y >= 1000] for _, y in batches])
    assert len(set(syn_seen.tolist())) == 100  # 112 draws: the first 100 walk every synthetic sample once


def test_single_pass_sampler_never_repeats_across_a_resume() -> None:
    sampler = SinglePassSampler(1000, seed=3)
    seen = sampler.take(123).tolist() + sampler.take(77).tolist()
    resumed = SinglePassSampler(1000, seed=3)
    resumed.load_state_dict(sampler.state_dict())
    seen += resumed.take(800).tolist()
    assert sorted(seen) == list(range(1000))  # every unique sample exactly once
    assert resumed.passes == 0
    nxt = resumed.take(10)  # only now does a second pass start
    assert resumed.passes == 1 and len(set(nxt.tolist())) == 10


def test_single_pass_sampler_order_is_seeded_and_state_is_checked() -> None:
    a = SinglePassSampler(100, seed=1).take(100)
    assert torch.equal(a, SinglePassSampler(100, seed=1).take(100))
    assert not torch.equal(a, SinglePassSampler(100, seed=2).take(100))
    with pytest.raises(ValueError, match="n="):
        SinglePassSampler(99, seed=1).load_state_dict(SinglePassSampler(100, seed=1).state_dict())


def test_sharding_splits_indices_like_distributed_sampler() -> None:
    shards = [EpochSampler(10, seed=0, rank=r, world_size=3) for r in range(3)]
    taken = [s.take(100) for s in shards]
    assert all(len(t) == 4 for t in taken)  # ceil(10 / 3), padded by wrapping around
    union = torch.cat(taken)
    assert set(union.tolist()) == set(range(10)) and len(union) == 12
    # ranks of the loader also get disjoint real samples (no padding needed for 48 = 2 x 24)
    ys = [torch.cat([y for _, y in _run(_loader(n=48, rank=r, world_size=2), range(1))]) for r in range(2)]
    assert not set(ys[0].tolist()) & set(ys[1].tolist())
    assert sorted(ys[0].tolist() + ys[1].tolist()) == list(range(48))


def test_crop_flip_is_a_shifted_and_flipped_copy_and_seeded() -> None:
    x = torch.rand(64, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    out = crop_flip(x, gen)
    assert out.shape == x.shape
    torch.testing.assert_close(out, crop_flip(x, torch.Generator().manual_seed(0)))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    n_flipped = 0
    for i in range(64):  # each output is one of the 9x9x2 crops of the zero-padded input
        matches = [(oy, ox, f) for oy in range(9) for ox in range(9) for f in (False, True)
                   if torch.equal(out[i], (lambda c: c.flip(-1) if f else c)(padded[i, :, oy:oy + 8, ox:ox + 8]))]
        assert matches, f"sample {i} is not a crop of its padded input"
        n_flipped += all(f for _, _, f in matches)
    assert 10 < n_flipped < 54  # about half are flipped


def test_make_train_loader_on_digits_with_augmentation() -> None:
    cfg = DataConfig(batch_size=32, augmentation="crop_flip", n_train=100)
    bundle = build_data(cfg, seed=0)
    loader = make_train_loader(bundle, cfg, seed=0, device="cpu")
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    x, y = batches[0]
    assert x.shape == (32, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    assert x.min() >= 0.0 and x.max() <= 1.0
    # an exhausted epoch yields nothing more until set_epoch moves on
    assert list(loader) == []
    loader.set_epoch(1)
    assert len(list(loader)) == 4


@pytest.mark.parametrize("rank", [0, 1])
def test_sharded_resume_is_exact_and_state_is_weights_only_safe(rank: int, tmp_path) -> None:
    full = _run(_loader(n=40, n_syn=30, fraction=0.5, rank=rank, world_size=2), range(2))
    first = _loader(n=40, n_syn=30, fraction=0.5, rank=rank, world_size=2)
    head = _run(first, range(2), stop_after=3)
    torch.save(first.state_dict(), tmp_path / "loader.pt")
    state = torch.load(tmp_path / "loader.pt", weights_only=True)
    second = _loader(n=40, n_syn=30, fraction=0.5, rank=rank, world_size=2)
    second.load_state_dict(state)
    got = head + _run(second, range(state["epoch"], 2))
    assert len(got) == len(full) == 10  # 20 real per rank, 4 real + 4 synthetic per batch
    for (xa, ya), (xb, yb) in zip(got, full, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    with pytest.raises(ValueError, match="number of processes changed"):
        _loader(n=40, n_syn=30, fraction=0.5, rank=0, world_size=1).load_state_dict(state)


def test_single_pass_over_synthetic_across_ranks_and_resume() -> None:
    seen: list[int] = []
    for rank in range(2):
        s = SinglePassSampler(101, seed=5, rank=rank, world_size=2)
        part = s.take(20).tolist()
        resumed = SinglePassSampler(101, seed=5, rank=rank, world_size=2)
        resumed.load_state_dict(s.state_dict())
        seen += part + resumed.take(len(resumed) - 20).tolist()
    # 101 samples on 2 ranks: 51 each, one wrapped-around pad (DistributedSampler semantics)
    assert len(seen) == 102 and set(seen) == set(range(101))


def test_device_cache_gathers_the_same_batches() -> None:
    from robustperf.data.loader import _on_device

    ds = ArrayDataset(torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8), torch.arange(20))
    moved = _on_device(ds, torch.device("cpu"))
    assert moved is not ds and moved.in_memory_bytes == 20 * 48
    idx = torch.tensor([5, 1, 19, 1])
    for a, b in zip(moved.get_batch(idx), ds.get_batch(idx), strict=True):
        assert torch.equal(a, b)
    on_disk = ArrayDataset(np.zeros((4, 2, 2, 1), np.uint8), np.zeros(4), channels_last_storage=True)
    assert _on_device(on_disk, torch.device("cpu")) is on_disk  # arrays on disk stay there


def test_all_synthetic_batches_walk_the_synthetic_set_once_per_epoch() -> None:
    loader = _loader(n=10, n_syn=45, fraction=1.0, batch_size=8, augmentation="none")
    assert len(loader) == 6 and loader.samples_per_epoch == 45
    for epoch in range(2):
        ys = torch.cat([y for _, y in _run(loader, range(epoch, epoch + 1))])
        assert sorted(ys.tolist()) == list(range(1000, 1045))
