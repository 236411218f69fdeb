"""`robustperf cost estimate|inference|flops|grids`: price a run before it starts, measure inference cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from robustperf.cli.common import console, fail, user_errors

cost_app = typer.Typer(help="FLOPs, GPU-hours, energy, CO2 and USD of runs and models.", no_args_is_help=True)

def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        fail(f"--input-shape {text!r} must look like 3,32,32")
    if len(shape) != 3 or min(shape) < 1:
        fail(f"--input-shape {text!r} must be three positive integers C,H,W")
    return shape


def _print_cost(cost: dict[str, Any]) -> None:
    from robustperf.cost.constants import GPU_HOUR_PRICES

    table = Table("quantity", "value")
    fb = cost["flops_breakdown"]
    rows = [
        ("run", cost["run_id"]),
        ("parameters", f"{cost['n_params']:,}"),
        ("forward FLOPs / image", f"{fb['forward_flops']:.4g}"),
        ("passes / image (counted; analytic)", f"{fb['passes']:.3f}; {fb['analytic_passes']}"),
        ("training samples", f"{cost['samples_seen']:.4g}"),
        ("training FLOPs", f"{cost['train_flops']:.4g}"),
        ("eval FLOPs (per-epoch PGD)", f"{cost['eval_flops']:.4g}"),
        ("GPU", cost["gpu"]),
        ("GPU-hours", f"{cost['gpu_hours']:.4g}"),
        ("energy (kWh, with PUE)", f"{cost['energy_kwh']:.4g}"),
        ("CO2 (kg)", f"{cost['co2_kg']:.4g}"),
        ("USD (electricity)", f"{cost['usd_electricity']:.4g}"),
    ]
    if cost.get("usd_gpu_hours") is not None:
        rows.append(("USD (cloud GPU-hours)", f"{cost['usd_gpu_hours']:.4g}"))
    else:
        lo, hi = GPU_HOUR_PRICES["debenedetti2023_low"].value, GPU_HOUR_PRICES["debenedetti2023_high"].value
        rows.append(
            (f"USD (cloud at ${lo}-{hi}/GPU-h)", f"{cost['gpu_hours'] * lo:.4g} - {cost['gpu_hours'] * hi:.4g}")
        )
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)


@cost_app.command("estimate")
def estimate(
    config: Path = typer.Argument(..., help="run config YAML"),
    overrides: list[str] = typer.Option([], "--set", help="section.key=value override (repeatable)"),
    gpu: str = typer.Option("h100", help="GPU to price on (h100, h200, a100, v100, a6000)"),
    mfu: float = typer.Option(
        0.3,
        help="achieved share of the datasheet dense bf16 peak; H100 TRADES-10 measured 0.15 fp32, 0.27-0.30 bf16 "
        "(REFERENCE.md s.6: 147-298 of 989 TFLOP/s)",
    ),
    throughput: float | None = typer.Option(None, help="measured training images/s (replaces peak x MFU)"),
    watts: float | None = typer.Option(None, help="mean board power (default: the GPU's TDP)"),
    input_shape: str | None = typer.Option(None, help="C,H,W if the dataset is not built in"),
    num_classes: int | None = typer.Option(None),
    train_size: int | None = typer.Option(None, help="training images per epoch"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Price a planned run before it starts: FLOPs, GPU-hours, kWh, CO2, USD."""
    from robustperf.config import load_config
    from robustperf.cost.planning import estimate_run
    from robustperf.training.methods import flop_iteration

    with user_errors():
        cfg = load_config(config, overrides)
        cost = estimate_run(
            cfg,
            flop_iteration(cfg.method),
            gpu=gpu,
            mfu=mfu,
            throughput=throughput,
            input_shape=_shape(input_shape) if input_shape else None,
            num_classes=num_classes,
            train_size=train_size,
            watts=watts,
        )
    if as_json:
        console.print_json(json.dumps(cost))
    else:
        _print_cost(cost)


@cost_app.command("flops")
def flops(
    model_name: str = typer.Argument(..., help="model name (see `robustperf models list`)"),
    kwargs: str = typer.Option("{}", "--kwargs", help='model kwargs as JSON, e.g. {"depth": 28, "width": 10}'),
    input_shape: str = typer.Option("3,32,32", help="C,H,W"),
    num_classes: int = typer.Option(10),
    n_steps: int = typer.Option(10, help="attack steps for the per-method table"),
) -> None:
    """Forward FLOPs, parameters, f_arch and counted passes per training method (meta device)."""
    from robustperf.config import RunConfig
    from robustperf.cost import analytic
    from robustperf.cost.accounting import train_flops_per_sample
    from robustperf.cost.planning import meta_model
    from robustperf.training.methods import flop_iteration

    shape = _shape(input_shape)
    with user_errors():
        cfg = RunConfig().with_overrides({"model.name": model_name, "model.kwargs": _json(kwargs)})
        model = meta_model(cfg, shape, num_classes)
        n_params = sum(p.numel() for p in model.parameters())
        table = Table("method", "passes (counted)", "passes (analytic)", "FLOPs / image")
        fwd = 0.0
        for method in ("standard", "pgd_at", "trades", "mart", "fast_at"):
            k = 0 if method == "standard" else n_steps
            method_cfg = cfg.with_overrides({"method.name": method, "method.attack.n_steps": k})
            b = train_flops_per_sample(model, method_cfg, flop_iteration(method_cfg.method), input_shape=shape)
            fwd = b.forward_flops
            table.add_row(method, f"{b.passes:.3f}", f"{b.analytic_passes:g}", f"{b.per_sample:.4g}")
    console.print(
        f"{model_name}: {n_params:,} parameters, forward {fwd / 1e9:.4g} GFLOPs/image, "
        f"f_arch {analytic.f_arch(fwd, n_params):.1f} FLOPs/param/sample"
    )
    console.print(table)


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--kwargs must be a JSON object ({exc})")
    if not isinstance(value, dict):
        fail('--kwargs must be a JSON object like {"width": 2}')
    return value


@cost_app.command("inference")
def inference(
    model_name: str = typer.Argument(..., help="model name (see `robustperf models list`)"),
    kwargs: str = typer.Option("{}", "--kwargs", help="model kwargs as JSON"),
    input_shape: str = typer.Option("3,32,32", help="C,H,W"),
    num_classes: int = typer.Option(10),
    batch_sizes: str = typer.Option("1,32,128", help="comma-separated batch sizes"),
    precisions: str = typer.Option("fp32,bf16,fp16,int8", help="comma-separated: fp32,bf16,fp16,int8"),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
    iters: int = typer.Option(5, help="timed batches per point (median reported)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Latency, throughput and memory at several batch sizes and precisions; params; GFLOPs."""
    from robustperf.cost.inference import InferenceBenchmark, InferenceConfig
    from robustperf.models import create_model

    shape = _shape(input_shape)
    with user_errors():
        bench = InferenceBenchmark(
            InferenceConfig(
                input_shape=shape,
                batch_sizes=tuple(int(b) for b in batch_sizes.split(",")),
                precisions=tuple(p.strip() for p in precisions.split(",")),
                device=device,
                iters=iters,
            )
        )
        model = create_model(model_name, num_classes=num_classes, input_shape=shape, **_json(kwargs))
        result = bench.measure(model)
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    console.print(
        f"{model_name}: {result.n_params:,} parameters, {result.param_bytes / 2**20:.2f} MiB of weights, "
        f"{result.gflops:.4g} GFLOPs/image on {result.device}"
    )
    console.print(f"activation memory: {result.activation_memory_method}")
    table = Table("precision", "batch", "latency ms", "images/s", "peak activations MiB", "note")
    for p in result.points:
        if not p.supported:
            table.add_row(p.precision, str(p.batch_size), "-", "-", "-", p.note)
            continue
        mib = "-" if p.peak_activation_bytes is None else f"{p.peak_activation_bytes / 2**20:.2f}"
        table.add_row(p.precision, str(p.batch_size), f"{p.latency_ms:.3f}", f"{p.throughput:.1f}", mib, p.note)
    console.print(table)


@cost_app.command("grids")
def grids() -> None:
    """Grid carbon-intensity presets, GPU-hour prices and GPU specs, with sources."""
    from robustperf.cost.constants import GPU_HOUR_PRICES, GPUS, GRID_DEFAULT, GRID_INTENSITY

    table = Table("preset", "value", "unit", "year", "source")
    for name, s in {**GRID_INTENSITY, **GPU_HOUR_PRICES}.items():
        label = f"{name} (default)" if name == GRID_DEFAULT else name
        table.add_row(label, f"{s.value:g}", s.unit, str(s.year), s.source)
    console.print(table)
    gpus = Table("gpu", "name", "dense bf16 TFLOP/s", "TDP W", "source")
    for short, g in GPUS.items():
        gpus.add_row(short, g.name, f"{g.peak_bf16_tflops:g}", f"{g.tdp_watts:g}", g.source)
    console.print(gpus)


def register(app: typer.Typer) -> None:
    app.add_typer(cost_app, name="cost")
