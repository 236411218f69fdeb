"""`robustperf cost estimate|inference|flops|grids|breakdown`: price a run, measure inference and robust overhead."""

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
    from robustperf.cost.constants import describe_equivalents, equivalents

    told = describe_equivalents(equivalents(cost["energy_kwh"], cost["co2_kg"]))
    rows.append(("equivalent to", told or "nothing: every everyday equivalent is below 1e-3 of its unit"))
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)


@cost_app.command("estimate")
def estimate(
    config: Path = typer.Argument(..., help="run config YAML"),
    overrides: list[str] = typer.Option([], "--set", help="section.key=value override (repeatable)"),
    gpu: str = typer.Option("h100", help="GPU to price on (h100, h200, a100, v100, a6000)"),
    mfu: float = typer.Option(
        0.3,  # = robustperf.cost.constants.MFU_DEFAULT (not imported: keeps `--help` light)
        help="achieved share of the datasheet dense bf16 peak; H100 TRADES-10 measured 0.15 fp32, 0.27-0.30 bf16 "
        "(REFERENCE.md s.6: 147-298 of 989 TFLOP/s); the one default of every GPU-hour conversion",
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
    model_name: str | None = typer.Argument(None, help="model name (see `robustperf models list`); or give --run"),
    kwargs: str = typer.Option("{}", "--kwargs", help="model kwargs as JSON"),
    input_shape: str = typer.Option("3,32,32", help="C,H,W"),
    num_classes: int = typer.Option(10),
    batch_sizes: str = typer.Option("1,32,128", help="comma-separated batch sizes"),
    precisions: str = typer.Option("fp32,bf16,fp16,int8", help="comma-separated: fp32,bf16,fp16,int8"),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
    iters: int = typer.Option(5, help="timed batches per point (median reported)"),
    int8_mode: str = typer.Option("static", help="static (FX PTQ: convs + linears) | dynamic (nn.Linear only)"),
    meter: str = typer.Option("auto", help="energy meter for joules per image"),
    watts: float | None = typer.Option(None, help="stated power for an energy estimate where nothing is metered"),
    run: Path | None = typer.Option(None, help="a trained run: its model, calibration on its training images, and "
                                               "clean/robust accuracy of the float and int8 models on its test set"),
    n_examples: int = typer.Option(200, help="test images for the accuracy and AutoAttack numbers (with --run)"),
    aa_version: str = typer.Option("standard", help="AutoAttack version on the float model (with --run)"),
    aa_attacks: str | None = typer.Option(None, help="comma-separated attacks for --aa-version custom, e.g. apgd-ce"),
    square_queries: int = typer.Option(1000, help="Square queries against the int8 model (with --run)"),
    eps_opt: float | None = typer.Option(None, "--eps", help="attack radius (default: the run's evaluation eps, its training eps)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Latency, throughput, memory and energy per image at several batch sizes and precisions; int8 robustness."""
    from robustperf.cost.inference import InferenceBenchmark, InferenceConfig
    from robustperf.models import create_model

    robustness = None
    with user_errors():
        calibration = None
        if run is not None:
            from robustperf.evaluation.quantized import load_run_for_inference

            model, cfg, calibration, (x_test, y_test) = load_run_for_inference(run, n_examples)
            shape = tuple(x_test.shape[1:])
            model_name = cfg.model.name
            threat = cfg.eval_threat_at(eps_opt)  # the run's evaluation threat model, or --eps
            eps, norm = threat.eps, threat.norm
        elif model_name is None:
            fail("give a model name (e.g. tiny_cnn) or --run RUN_DIR")
        else:
            shape = _shape(input_shape)
            model = create_model(model_name, num_classes=num_classes, input_shape=shape, **_json(kwargs))
        cfg_inf = InferenceConfig(
            input_shape=shape,
            batch_sizes=tuple(int(b) for b in batch_sizes.split(",")),
            precisions=tuple(p.strip() for p in precisions.split(",")),
            device=device,
            iters=iters,
            int8_mode=int8_mode,
            meter=meter,
            watts=watts,
        )
        result = InferenceBenchmark(cfg_inf).measure(model, calibration=calibration)
        if run is not None and "int8" in cfg_inf.precisions:
            from robustperf.cost.inference import quantize_int8
            from robustperf.evaluation.quantized import quantized_robustness

            quantized = quantize_int8(model, calibration or [x_test])
            attacks = tuple(a.strip() for a in aa_attacks.split(",")) if aa_attacks else ()
            robustness = quantized_robustness(model, quantized, x_test, y_test, eps=eps, norm=norm,
                                              version=aa_version, attacks=attacks, square_queries=square_queries)
    if as_json:
        out = result.to_dict()
        out["int8_robustness"] = robustness.to_dict() if robustness is not None else None
        console.print_json(json.dumps(out))
        return
    console.print(
        f"{model_name}: {result.n_params:,} parameters, {result.param_bytes / 2**20:.2f} MiB of weights, "
        f"{result.gflops:.4g} GFLOPs/image on {result.device}"
    )
    console.print(f"activation memory: {result.activation_memory_method}")
    sources = {p.energy_source for p in result.points if p.energy_source}
    console.print(f"energy: {'; '.join(sorted(sources)) or 'not measured'}")
    table = Table("precision", "batch", "latency ms", "images/s", "mJ / image", "peak activations MiB")
    notes: dict[str, str] = {}
    for p in result.points:
        if p.note:
            notes.setdefault(p.precision, p.note)
        if not p.supported:
            table.add_row(p.precision, str(p.batch_size), "-", "-", "-", "-")
            continue
        mib = "-" if p.peak_activation_bytes is None else f"{p.peak_activation_bytes / 2**20:.2f}"
        mj = "-" if p.joules_per_image is None else f"{p.joules_per_image * 1e3:.4g}"
        table.add_row(p.precision, str(p.batch_size), f"{p.latency_ms:.3f}", f"{p.throughput:.1f}", mj, mib)
    console.print(table)
    for precision, note in notes.items():
        console.print(f"{precision}: {note}")
    if robustness is not None:
        r = robustness
        acc = Table("model", "clean acc", "robust acc", "how", title=f"accuracy on {r.n_examples} test images, "
                    f"{r.norm} eps {r.eps:.4g}")
        acc.add_row("fp32", f"{r.clean_acc_float:.3f}", f"{r.robust_acc_float:.3f}", f"AutoAttack {r.version}")
        acc.add_row("int8", f"{r.clean_acc_int8:.3f}", f"{r.robust_acc_int8:.3f}",
                    f"min(Square {r.square_acc_int8:.3f}, transfer from fp32 {r.transfer_acc_int8:.3f})")
        console.print(acc)
        for name, flag in r.flags.items():
            if flag["fired"]:
                console.print(f"[yellow]flag {name}[/]: {flag['detail']}")


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
    from robustperf.cost.constants import COUNTRY_ANNUAL_CO2_KG, CPU_WATTS_PER_CORE, EQUIVALENTS

    other = Table("constant", "value", "unit", "year", "source", title="energy estimate and relatable equivalents")
    c = CPU_WATTS_PER_CORE
    other.add_row("CPU power per core (estimate)", f"{c.value:g}", c.unit, str(c.year), c.source)
    for eq in EQUIVALENTS.values():
        s = eq.per_unit
        other.add_row(f"1 {eq.unit}", f"{s.value:g}", s.unit, str(s.year), s.source)
    for country, s in COUNTRY_ANNUAL_CO2_KG.items():
        other.add_row(f"annual emissions: {country}", f"{s.value:g}", s.unit, str(s.year), s.source)
    console.print(other)


@cost_app.command("breakdown")
def breakdown(
    config: Path = typer.Argument(..., help="run config YAML (model, data, attack settings, device)"),
    overrides: list[str] = typer.Option([], "--set", help="section.key=value override (repeatable)"),
    methods: str = typer.Option("pgd_at,trades", help="comma-separated methods compared with standard training"),
    repeats: int = typer.Option(5, help="epochs per method; the fastest and slowest are dropped"),
    max_steps: int | None = typer.Option(None, help="batches per measured epoch (default: the whole epoch)"),
    profile_steps: int = typer.Option(3, help="steps profiled per method for the layer-type breakdown (0: skip)"),
    meter: str = typer.Option("auto", help="energy meter: auto | nvml | rapl | estimate | ..."),
    watts: float | None = typer.Option(None, help="stated power for an energy estimate where nothing is metered"),
    out: Path | None = typer.Option(None, help="directory for overhead.json and overhead.png"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Robust vs standard training: per-epoch time, energy, power, CO2 ratios and time by layer type."""
    from robustperf.config import load_config
    from robustperf.training.overhead import OverheadConfig, measure_overhead, plot_overhead

    with user_errors():
        cfg = load_config(config, overrides)
        oc = OverheadConfig(methods=tuple(m.strip() for m in methods.split(",") if m.strip()), repeats=repeats,
                            max_steps=max_steps, profile_steps=profile_steps, meter=meter, watts=watts)
        result = measure_overhead(cfg, oc)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "overhead.json").write_text(json.dumps(result.to_dict(), indent=1))
        plot_overhead(result).savefig(out / "overhead.png", dpi=120)
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    _print_overhead(result)
    if out is not None:
        console.print(f"wrote {out / 'overhead.json'} and {out / 'overhead.png'}")


def _print_overhead(result: Any) -> None:
    from robustperf.training.overhead import LAYER_TYPES, PHASES

    def f(x: float | None, spec: str = ".4g") -> str:
        return "-" if x is None else format(x, spec)

    console.print(f"{result.model} ({result.n_params:,} parameters) on {result.device}, batch {result.batch_size}; "
                  f"energy {result.energy_method}: {result.energy_source}")
    names = [e.method for e in result.epochs]
    per_epoch = Table("per epoch", *names, title="trimmed mean of the repeats; x: ratio to standard training")
    rows: list[tuple[str, Any]] = [
        ("seconds", lambda e: f(e.seconds)), ("joules", lambda e: f(e.joules)), ("watts", lambda e: f(e.watts)),
        ("CO2 g", lambda e: f(None if e.co2_kg is None else e.co2_kg * 1e3)),
        ("x time", lambda e: f(e.ratios.get("seconds"), ".3f")), ("x energy", lambda e: f(e.ratios.get("joules"), ".3f")),
        ("x power", lambda e: f(e.ratios.get("watts"), ".3f")), ("x CO2", lambda e: f(e.ratios.get("co2_kg"), ".3f")),
        ("x FLOPs (counted)", lambda e: f(e.ratios.get("flops"), ".3f")),
        ("seconds, every repeat", lambda e: " ".join(f"{s:.3g}" for s in e.seconds_repeats)),
    ]
    for label, cell in rows:
        per_epoch.add_row(label, *(cell(e) for e in result.epochs))
    console.print(per_epoch)
    if result.layers:
        clock = result.layers[0].clock
        layers = Table("ms per step", *(layer.method for layer in result.layers),
                       title=f"time by layer type and phase ({clock}, torch.profiler)")
        for k in LAYER_TYPES:
            layers.add_row(k, *(f"{layer.by_type[k]:.2f} ({layer.by_type[k] / layer.total_ms:.0%})"
                                for layer in result.layers))
        layers.add_row("total in ops", *(f"{layer.total_ms:.2f}" for layer in result.layers))
        layers.add_row("untracked (Python, dispatch, profiler)", *(f"{layer.untracked_ms:.2f}" for layer in result.layers))
        layers.add_row("step wall time (profiled)", *(f"{layer.wall_ms:.2f}" for layer in result.layers))
        labels = {"attack": "phase: attack input-gradient passes", "update": "phase: weight update fwd+bwd",
                  "optimizer": "phase: optimizer step"}
        for p in PHASES:
            layers.add_row(labels[p], *(f"{layer.by_phase[p]:.2f}" for layer in result.layers))
        console.print(layers)
    for note in result.notes:
        console.print(f"note: {note}")


def register(app: typer.Typer) -> None:
    app.add_typer(cost_app, name="cost")
