"""GPU checks owed by issue 4 (run on a machine with an NVIDIA GPU; CPU-only machines exit early).

1. NVML total-energy counter vs the power-sampling fallback on the same training window:
   both meters run at once over one "epoch" of TRADES-10 steps; target |ratio - 1| < 3 %.
2. Metering overhead: training throughput with no meter, with the NVML counter read once per
   epoch, and with the sampling thread; target < 1 % slowdown.
3. `robustperf cost estimate` vs a measured short run: images/s and joules/image measured here,
   extrapolated to the planned run, compared with the estimate from counted FLOPs x peak x MFU
   (and from the measured throughput); target within 10 %.

Training steps run TRADES-k's own training iteration (`robustperf.training.methods.flop_iteration`, what
`cost estimate` counts) on random tensors of CIFAR-10 shape, bf16 autocast + channels_last by default
(REFERENCE.md section 6 setting). Writes ``benchmarks/results/energy_meter_check_<gpu>.json``.

Usage::

    python benchmarks/energy_meter_check.py --depth 28 --width 10 --batch 512 --epoch-steps 100
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from robustperf.config import RunConfig
from robustperf.cost import conversions as cv
from robustperf.cost.accounting import train_flops_per_sample
from robustperf.cost.energy import NvmlMeter, NvmlMeterConfig, SamplingMeter, SamplingMeterConfig
from robustperf.cost.planning import estimate_run
from robustperf.training.methods import flop_iteration

log = logging.getLogger("energy_meter_check")


def build(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.optim.Optimizer, RunConfig]:
    from robustperf.models import create_model

    model = create_model("wide_resnet", num_classes=10, depth=args.depth, width=args.width).cuda()
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    cfg = RunConfig().with_overrides(
        {
            "method.name": "trades",
            "method.attack.n_steps": args.steps,
            "model.name": "wide_resnet",
            "model.kwargs": {"depth": args.depth, "width": args.width},
            "data.dataset": "cifar10",
            "data.batch_size": args.batch,
            "optim.epochs": args.plan_epochs,
            "runtime.precision": "bf16",
        }
    )
    return model, opt, cfg


def run_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, n: int, batch: int, k: int) -> float:
    """Seconds for ``n`` TRADES-k iterations on random CIFAR-shaped batches."""
    cfg = RunConfig().with_overrides({"method.name": "trades", "method.attack.n_steps": k, "method.beta": 5.0})
    iteration = flop_iteration(cfg.method)
    x = torch.rand(batch, 3, 32, 32, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device="cuda")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            iteration(model, x, y, lambda: None)
        opt.step()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def check_agreement(model: Any, opt: Any, args: argparse.Namespace) -> dict[str, Any]:
    nvml = NvmlMeter(NvmlMeterConfig(device_index=0))
    sampling = SamplingMeter(SamplingMeterConfig(device_index=0, interval_s=args.interval))
    nvml.start()
    sampling.start()
    seconds = run_steps(model, opt, args.epoch_steps, args.batch, args.steps)
    s, n = sampling.stop(), nvml.stop()
    ratio = s.joules / n.joules
    log.info(
        "nvml %.1f J, sampling %.1f J (%d samples): ratio %.4f over %.1f s",
        n.joules,
        s.joules,
        sampling.n_samples,
        ratio,
        seconds,
    )
    return {
        "nvml_joules": n.joules,
        "sampling_joules": s.joules,
        "ratio": ratio,
        "seconds": seconds,
        "sampling_interval_s": args.interval,
        "n_samples": sampling.n_samples,
        "within_3pct": abs(ratio - 1) < 0.03,
    }


def check_overhead(model: Any, opt: Any, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for repeat in range(args.repeats):  # interleave to cancel clock/thermal drift
        for name in ("none", "nvml", "sampling"):
            meter = {
                "none": None,
                "nvml": NvmlMeter(),
                "sampling": SamplingMeter(SamplingMeterConfig(0, args.interval)),
            }[name]
            if meter is not None:
                meter.start()
            seconds = run_steps(model, opt, args.epoch_steps, args.batch, args.steps)
            if meter is not None:
                meter.stop()
            out.setdefault(name, []).append(args.epoch_steps * args.batch / seconds)
            log.info("repeat %d %s: %.1f img/s", repeat, name, out[name][-1])
    best = {k: max(v) for k, v in out.items()}
    return {
        "images_per_s": out,
        "overhead_nvml": 1 - best["nvml"] / best["none"],
        "overhead_sampling": 1 - best["sampling"] / best["none"],
    }


def check_estimate(model: Any, opt: Any, cfg: RunConfig, args: argparse.Namespace) -> dict[str, Any]:
    meter = NvmlMeter()
    meter.start()
    seconds = run_steps(model, opt, args.epoch_steps, args.batch, args.steps)
    reading = meter.stop()
    images = args.epoch_steps * args.batch
    planned = args.plan_epochs * 50_000
    measured_hours = cv.gpu_hours_from_throughput(planned, images / seconds)
    measured_kwh = cv.joules_to_kwh(reading.joules / images * planned)
    flops = train_flops_per_sample(model, cfg, flop_iteration(cfg.method), input_shape=(3, 32, 32))
    achieved = flops.per_sample * images / seconds
    est = {}
    for label, kwargs in {"peak_x_mfu": {"throughput": None}, "throughput": {"throughput": images / seconds}}.items():
        e = estimate_run(
            cfg.with_overrides({"eval.every_n_epochs": 10**6}),
            flop_iteration(cfg.method),
            gpu=args.gpu,
            mfu=args.mfu,
            input_shape=None,
            num_classes=None,
            train_size=None,
            watts=args.watts,
            **kwargs,
        )
        est[label] = {
            "gpu_hours": e["gpu_hours"],
            "energy_kwh": e["energy_kwh"],
            "hours_ratio": e["gpu_hours"] / measured_hours,
            "kwh_ratio": e["energy_kwh"] / measured_kwh,
        }
    return {
        "measured_images_per_s": images / seconds,
        "measured_watts": reading.watts,
        "measured_joules_per_image": reading.joules / images,
        "achieved_model_tflops": achieved / 1e12,
        "achieved_mfu_vs_datasheet": achieved / cv.peak_flops_per_second(args.gpu),
        "extrapolated_gpu_hours": measured_hours,
        "extrapolated_kwh": measured_kwh,
        "estimates": est,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=28)
    p.add_argument("--width", type=int, default=10)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=10, help="TRADES attack steps")
    p.add_argument("--epoch-steps", type=int, default=100, help="iterations per metered window (>= ~1 s)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.1, help="sampling interval (s)")
    p.add_argument("--plan-epochs", type=int, default=100)
    p.add_argument("--gpu", default="h100")
    p.add_argument("--mfu", type=float, default=0.3)
    p.add_argument("--watts", type=float, default=None, help="board power for the estimate (default TDP)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not torch.cuda.is_available():
        log.error("no CUDA GPU here: these checks need one (see the module docstring)")
        sys.exit(1)
    torch.backends.cudnn.benchmark = True
    model, opt, cfg = build(args)
    run_steps(model, opt, 5, args.batch, args.steps)  # warm-up (cudnn autotune)
    result = {
        "machine": {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "host": platform.node()},
        "args": {k: str(v) for k, v in vars(args).items()},
        "agreement": check_agreement(model, opt, args),
        "overhead": check_overhead(model, opt, args),
        "estimate": check_estimate(model, opt, cfg, args),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(0).replace(" ", "_").replace("/", "_")
    path = args.out / f"energy_meter_check_{name}.json"
    path.write_text(json.dumps(result, indent=2))
    log.info("%s", json.dumps(result, indent=2))
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
