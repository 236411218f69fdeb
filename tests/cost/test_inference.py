"""Inference benchmark: points per precision and batch size, memory estimate, GFLOPs, clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from robustperf.cost.inference import ActivationTracker, InferenceBenchmark, InferenceConfig, InferenceConfigError


def net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))


def test_points_for_every_precision_and_batch() -> None:
    cfg = InferenceConfig(input_shape=(3, 8, 8), batch_sizes=(1, 4), warmup=0, iters=2)
    result = InferenceBenchmark(cfg).measure(net())
    assert [(p.precision, p.batch_size) for p in result.points] == [
        (prec, b) for prec in ("fp32", "bf16", "fp16", "int8") for b in (1, 4)
    ]
    fp32 = [p for p in result.points if p.precision == "fp32"]
    assert all(p.supported and p.latency_ms > 0 and p.throughput > 0 for p in fp32)
    assert result.n_params == 3 * 8 * 9 + 8 + 512 * 10 + 10
    assert result.param_bytes == 4 * result.n_params
    assert result.gflops * 1e9 == pytest.approx(2 * 27 * 8 * 64 + 2 * 512 * 10)
    int8 = [p for p in result.points if p.precision == "int8"]
    assert all(p.supported and "static int8" in p.note and "1 conv(s) quantised" in p.note for p in int8)
    assert all(p.joules_per_image is not None and p.joules_per_image > 0 for p in result.points if p.supported)
    assert "estimate" in result.activation_memory_method


def test_activation_tracker_peak_by_hand() -> None:
    model = net().eval()
    x = torch.rand(4, 3, 8, 8)
    with torch.inference_mode(), ActivationTracker() as tracker:
        model(x)
    conv_out = 4 * 8 * 8 * 8 * 4  # bytes of the conv output; in-place ReLU and the flatten view add nothing
    logits = 4 * 10 * 4
    assert conv_out <= tracker.peak <= conv_out + logits
    # The activations scale with the batch.
    x8 = torch.rand(8, 3, 8, 8)
    with torch.inference_mode(), ActivationTracker() as big:
        model(x8)
    assert big.peak == pytest.approx(2 * tracker.peak)


def test_bad_settings_are_named() -> None:
    with pytest.raises(InferenceConfigError, match="int4"):
        InferenceConfig(precisions=("int4",))
    with pytest.raises(InferenceConfigError, match="batch_sizes"):
        InferenceConfig(batch_sizes=(0,))
    if not torch.cuda.is_available():
        with pytest.raises(InferenceConfigError, match="CUDA"):
            InferenceBenchmark(InferenceConfig(device="cuda")).measure(net())
