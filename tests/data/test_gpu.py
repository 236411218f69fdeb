"""The loader on a CUDA device: data cached on the GPU, augmentation there, exact resume (needs a GPU)."""

from __future__ import annotations

import pytest
import torch

from robustperf.config import DataConfig
from robustperf.data import build_data, make_train_loader

pytestmark = pytest.mark.gpu


def test_cuda_loader_resumes_exactly_and_delivers_on_device() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cfg = DataConfig(dataset="random", n_train=2048, n_test=16, image_size=32, batch_size=256,
                     augmentation="crop_flip")
    bundle = build_data(cfg, seed=0)
    full = [b for b in make_train_loader(bundle, cfg, seed=0, device="cuda")]
    first = make_train_loader(bundle, cfg, seed=0, device="cuda")
    head = []
    for batch in first:
        head.append(batch)
        if len(head) == 3:
            break
    second = make_train_loader(bundle, cfg, seed=0, device="cuda")
    second.load_state_dict(first.state_dict())
    got = head + list(second)
    assert len(got) == len(full) == 8
    for (xa, ya), (xb, yb) in zip(got, full, strict=True):
        assert xa.is_cuda and ya.is_cuda
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
