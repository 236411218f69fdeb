"""Shared fixtures for attack tests: a tiny MLP trained for a second on scikit-learn's digits."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).div_(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    y = torch.tensor(data.target, dtype=torch.long)
    return x, y


def train_digits_mlp(
    width: int = 64, n_steps: int = 300, seed: int = 0
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Train an MLP on the first 1400 digits (full batch, Adam); return it in eval mode with the held-out rest."""
    x, y = _digits()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x_tr, y_tr = x[:1400], y[:1400]
    for _ in range(n_steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x_tr), y_tr).backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model, x[1400:], y[1400:]


@pytest.fixture(scope="session")
def digits_mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(model in eval mode, x_test (397, 1, 8, 8), y_test (397,)); clean accuracy about 95 %."""
    return train_digits_mlp()
