"""int8 with convolutions quantised (FX static PTQ), and the int8 model's robustness with masking flags."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustperf.cost.inference import (
    InferenceBenchmark,
    InferenceConfig,
    count_quantized_convs,
    quantize_int8,
)
from robustperf.evaluation.quantized import quantized_robustness
from robustperf.models import create_model


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return create_model("tiny_cnn", num_classes=10, input_shape=(1, 8, 8), mean=(0.5,), std=(0.25,), width=8).eval()


def test_int8_static_quantises_the_convolutions() -> None:
    model = _cnn()
    calibration = [torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    q = quantize_int8(model, calibration)
    assert count_quantized_convs(model) == (0, 2)  # the float model: two nn.Conv2d, untouched
    assert count_quantized_convs(q) == (2, 0)  # every conv is an int8 kernel now, none left in float
    convs = [m for m in q.modules() if "Conv" in type(m).__name__]
    assert all(type(m).__module__.startswith("torch.ao.nn.intrinsic.quantized") for m in convs)  # conv+bn+relu fused
    w = convs[0].weight()
    assert w.is_quantized and w.dtype == torch.qint8
    assert any(type(m).__name__ == "Linear" and type(m).__module__.startswith("torch.ao.nn.quantized") for m in q.modules())
    x = torch.rand(256, 1, 8, 8, generator=torch.Generator().manual_seed(100))
    with torch.inference_mode():
        ref, out = model(x), q(x)
    # int8 follows the float model: logits within quantisation error (2-5 % of the largest logit measured
    # here), and most predictions agree although an untrained model's logits are nearly tied
    assert (ref - out).abs().max() < 0.15 * ref.abs().max()
    assert (ref.argmax(1) == out.argmax(1)).float().mean() >= 0.75


def test_benchmark_int8_modes() -> None:
    cfg = InferenceConfig(input_shape=(1, 8, 8), batch_sizes=(4,), precisions=("int8",), warmup=0, iters=1,
                          meter="estimate", watts=10.0)
    static = InferenceBenchmark(cfg).measure(_cnn()).points[0]
    assert static.supported and "2 conv(s) quantised, 0 float conv(s) left" in static.note
    assert static.energy_source is not None and static.energy_source.startswith("estimate: 10 W")
    dynamic = InferenceBenchmark(InferenceConfig(**{**cfg.__dict__, "int8_mode": "dynamic"})).measure(_cnn()).points[0]
    assert "convolutions stay fp32" in dynamic.note
    with pytest.raises(ValueError, match="int8_mode"):
        InferenceConfig(int8_mode="int4")


def test_quantized_robustness_flags_missing_gradients() -> None:
    torch.set_num_threads(1)
    model = _cnn()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(12, 1, 8, 8, generator=gen)
    with torch.inference_mode():
        y = model(x).argmax(1)  # labels the float model gets right, so robust accuracy is not trivially 0
    q = quantize_int8(model, [x])
    r = quantized_robustness(model, q, x, y, eps=0.3, version="custom", attacks=("apgd-ce",), square_queries=30,
                             attack_params={"apgd-ce": {"n_iter": 10}})
    assert r.clean_acc_float == 1.0 and 0.5 <= r.clean_acc_int8 <= 1.0
    assert r.white_box_int8 is not None and "grad" in r.white_box_int8  # no autograd through int8 kernels
    assert r.flags["no_gradients"]["fired"]
    assert r.robust_acc_int8 == min(r.square_acc_int8, r.transfer_acc_int8)
    assert r.robust_acc_float < 1.0  # eps 0.3 on 8x8 digits-sized inputs: APGD breaks an untrained CNN
    assert 0.0 <= r.robust_acc_int8 <= r.clean_acc_int8


def test_cli_inference_on_a_trained_run(tmp_path) -> None:  # noqa: ANN001
    import json

    from typer.testing import CliRunner

    from robustperf.cli.app import app
    from robustperf.config import RunConfig
    from robustperf.training import train

    cfg = RunConfig().with_overrides({
        "data.dataset": "digits", "data.n_train": 128, "data.n_test": 32, "data.batch_size": 32,
        "model.name": "tiny_cnn", "model.kwargs": {"width": 4}, "method.name": "standard", "optim.epochs": 1,
        "eval.n_examples": 16, "eval.attack.n_steps": 1, "cost.energy_meter": "none", "runtime.device": "cpu",
        "runtime.progress": False, "method.attack.eps": 0.1,
    })
    run_dir = train(cfg, tmp_path)
    res = CliRunner().invoke(app, [
        "cost", "inference", "--run", str(run_dir.path), "--batch-sizes", "4", "--precisions", "fp32,int8",
        "--iters", "1", "--n-examples", "8", "--aa-version", "custom", "--aa-attacks", "apgd-ce",
        "--square-queries", "10", "--meter", "estimate", "--watts", "15", "--json",
    ])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    int8 = [p for p in out["points"] if p["precision"] == "int8"][0]
    assert int8["supported"] and "conv(s) quantised, 0 float conv(s) left" in int8["note"]
    assert int8["joules_per_image"] > 0
    rob = out["int8_robustness"]
    assert rob["n_examples"] == 8 and rob["eps"] == pytest.approx(0.1)
    assert rob["flags"]["no_gradients"]["fired"]


def test_metered_energy_window_is_extended_to_min_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from robustperf.cost import energy
    from robustperf.cost.energy import EnergyReading

    windows: list[float] = []

    class Counter:  # a metered source: 100 W while the window is open
        source = "rapl"

        def start(self) -> None:
            self.t0 = time.perf_counter()

        def read(self) -> EnergyReading:
            dt = time.perf_counter() - self.t0
            return EnergyReading(100.0 * dt, dt, self.source)

        def stop(self) -> EnergyReading:
            r = self.read()
            windows.append(r.seconds)
            return r

    monkeypatch.setattr(energy, "create_meter", lambda *a, **k: Counter())
    cfg = InferenceConfig(input_shape=(1, 8, 8), batch_sizes=(2,), precisions=("fp32",), warmup=0, iters=1,
                          min_energy_seconds=0.2)
    point = InferenceBenchmark(cfg).measure(_cnn()).points[0]
    assert windows and windows[0] >= 0.2  # one batch takes well under 0.2 s: untimed batches filled the window
    assert point.energy_source == "rapl"
    # joules per image = 100 W x window / images in the window, so it is ~100 W x the time of one image
    assert point.joules_per_image == pytest.approx(100.0 * point.latency_ms / 1e3 / 2, rel=3.0)
