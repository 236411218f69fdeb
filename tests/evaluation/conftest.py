"""Fixtures for evaluation tests: a tiny MLP trained for a second on scikit-learn's digits, and models
built to trigger each sanity flag."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn


def train_digits_mlp(width: int = 64, n_steps: int = 300, seed: int = 0) -> tuple[nn.Module, Tensor, Tensor]:
    """An MLP trained full-batch with Adam on the first 1400 digits; returned in eval mode with the rest."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).div_(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    y = torch.tensor(data.target, dtype=torch.long)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(n_steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:1400]), y[:1400]).backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, x[1400:], y[1400:]


@pytest.fixture(scope="session")
def digits_mlp() -> tuple[nn.Module, Tensor, Tensor]:
    """(model in eval mode, x_test (397, 1, 8, 8), y_test (397,)); clean accuracy about 95 %."""
    return train_digits_mlp()


class Noisy(nn.Module):
    """Adds fresh Gaussian noise to the input at every call: a randomised defence."""

    def __init__(self, model: nn.Module, std: float = 0.05) -> None:
        super().__init__()
        self.model, self.std = model, std

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x + self.std * torch.randn_like(x))


class Quantized(nn.Module):
    """Rounds the input to 8 levels first: the input gradient is exactly zero (gradient masking)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(torch.round(x * 8) / 8)


class _FlipOffGrid(torch.autograd.Function):
    """Identity whose backward is the true gradient on the data grid (pixels k/16) and its negation off it."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        on_grid = ((x * 16 - torch.round(x * 16)).abs() < 1e-4).flatten(1).all(1)
        ctx.save_for_backward(on_grid)
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (on_grid,) = ctx.saved_tensors
        sign = torch.where(on_grid, 1.0, -1.0).view(-1, *([1] * (grad.dim() - 1)))
        return grad * sign


class MisleadingGradient(nn.Module):
    """FGSM (one step from the clean point) sees the true gradient; PGD's iterates, off the pixel grid,
    see it reversed, so PGD walks away from the boundary: PGD ends up weaker than FGSM."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(_FlipOffGrid.apply(x))


@pytest.fixture(scope="session")
def noisy_mlp(digits_mlp) -> nn.Module:
    return Noisy(digits_mlp[0])


@pytest.fixture(scope="session")
def quantized_mlp(digits_mlp) -> nn.Module:
    return Quantized(digits_mlp[0])


@pytest.fixture(scope="session")
def misleading_mlp(digits_mlp) -> nn.Module:
    return MisleadingGradient(digits_mlp[0])
