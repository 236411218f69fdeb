"""Tiny models for tests and CPU demos (timm keeps the same habit: every model family has a test-sized one)."""

from __future__ import annotations

import math

from torch import nn

from robustperf.models.base import MODELS, InputShape, ModelError


@MODELS.register("tiny_mlp")
def tiny_mlp(*, num_classes: int, input_shape: InputShape, width: int = 64) -> nn.Module:
    """Flatten -> Linear(width) -> ReLU -> Linear(num_classes)."""
    _positive("tiny_mlp", width=width)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), width),
        nn.ReLU(inplace=True),
        nn.Linear(width, num_classes),
    )


@MODELS.register("tiny_cnn")
def tiny_cnn(*, num_classes: int, input_shape: InputShape, width: int = 16, batch_norm: bool = True) -> nn.Module:
    """Two 3x3 conv layers (the second with stride 2), global average pool, linear head.

    BatchNorm is on by default so the training engine's BN modes are exercised by the tiny model too.
    """
    _positive("tiny_cnn", width=width)

    def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
        conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=not batch_norm)
        return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(input_shape[0], width, 1),
        *block(width, 2 * width, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


def _positive(model: str, **values: int) -> None:
    for key, value in values.items():
        if int(value) != value or value < 1:
            raise ModelError(f"model {model!r}: {key} must be a positive integer, got {value!r}")
