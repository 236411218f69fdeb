"""`robustperf fit` and `robustperf forecast`: scaling laws from the command line (no torch needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from robustperf.cli.common import console, fail, user_errors

_DEFAULTS = {  # run-index columns (robustperf.scaling.STORE_COLUMNS); override with the options
    "x": "cost.train_flops",
    "y": "robust.acc",  # the run's one robust accuracy (robustperf.store.robust)
    "n": "final.n_params",
    "d": "final.samples_seen",
    "loss": "final.adv_loss",
    "fid": "config.data.synthetic_fid",
}


def _fit_kwargs(law: str, *, n_bins: int, binning: str, best: str, min_y: float | None, bootstrap: int, seed: int,
                drop_underfit: bool, reference_fid: float | None) -> dict[str, Any]:
    """The options that ``law``'s fitter takes (read from its ``fit_table``/``fit`` signature)."""
    from robustperf.scaling import law_class
    from robustperf.scaling.laws import fit_option_names

    given: dict[str, Any] = {"bootstrap": bootstrap, "seed": seed, "n_bins": n_bins, "binning": binning, "best": best,
                             "min_y": min_y, "drop_underfit": drop_underfit, "reference_fid": reference_fid}
    takes = fit_option_names(law_class(law))
    return {key: value for key, value in given.items() if key in takes}


def fit_command(
    data: Path = typer.Argument(..., help="CSV or Parquet table, or a runs directory"),
    law: str = typer.Option(..., "--law", help="law to fit: a registered law with a fitter (power_law, chinchilla, approach1, "
                      "approach2, approach3, linear, or a plug-in's), or predictor (papers/002)"),
    x: str = typer.Option(_DEFAULTS["x"], "--x", help="compute column (power_law)"),
    y: str = typer.Option(_DEFAULTS["y"], "--y", help="accuracy/error column (power_law, linear)"),
    n: str = typer.Option(_DEFAULTS["n"], "--n", help="parameter-count column"),
    d: str = typer.Option(_DEFAULTS["d"], "--d", help="training-samples column"),
    loss: str = typer.Option(_DEFAULTS["loss"], "--loss", help="adversarial-loss column"),
    fid: str = typer.Option(_DEFAULTS["fid"], "--fid", help="FID column (missing/empty = real data, FID 0)"),
    run: str = typer.Option("run_id", "--run", help="run-id column of training curves (approach1 on a table)"),
    bins: int = typer.Option(19, "--bins", help="FLOPs bins of the envelope (power_law)"),
    binning: str = typer.Option("log", "--binning", help="log or linear bins (power_law)"),
    best: str = typer.Option("max", "--best", help="envelope keeps the max (accuracy) or min (error) per bin"),
    min_y: float = typer.Option(None, "--min-y", help="drop rows with y below this first (power_law)"),
    reference_fid: float = typer.Option(None, "--reference-fid", help="FID of the base data set (approach2)"),
    drop_underfit: bool = typer.Option(False, "--drop-underfit", help="papers/001 filter: N<100M, D>10M, FID<10"),
    bootstrap: int = typer.Option(200, "--bootstrap", min=0,
                                  help="bootstrap resamples for intervals and the identifiability check (0: skip)"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(None, "--out", help="write the fit as JSON here"),
    features: str = typer.Option(None, "--features", help="predictor: comma-separated recipe columns (target: --y)"),
) -> None:
    """Fit a scaling law to runs or a table, print it, and optionally save it as JSON."""
    from rich.table import Table

    from robustperf.scaling import fit_laws, fit_table

    if law == "predictor":  # gradient boosting recipe -> robustness, printed and drawn by cli/plot.py
        from robustperf.cli.plot import fit_predictor

        return fit_predictor(data, features, y, seed=seed, out=out)
    if law not in fit_laws():
        fail(f"unknown law {law!r} to fit; choose one of {', '.join(fit_laws())}")
    kwargs = _fit_kwargs(law, n_bins=bins, binning=binning, best=best, min_y=min_y, bootstrap=bootstrap, seed=seed,
                         drop_underfit=drop_underfit, reference_fid=reference_fid)
    with user_errors():
        result = fit_table(data, law, x=x, y=y, n=n, d=d, loss=loss, fid=fid, run=run, **kwargs)
    table = Table("parameter", "value", "95 % interval", title=f"{law} fit on {data} ({result.n_points} points)")
    if law == "approach1":
        table.caption = "N* = N_coef C^a, D* = D_coef C^b, L* = L_coef C^l_exponent (C in FLOPs)"
    for name in result.params:
        e = result.estimate(name)
        table.add_row(name, f"{e.value:.6g}", "" if e.low is None else f"[{e.low:.4g}, {e.high:.4g}]")
    console.print(table)
    colour = "green" if result.ok else "red"
    console.print(f"status: [{colour}]{result.status.value}[/]  objective {result.objective:.6g}  {result.message}")
    ident = result.metrics.identifiability
    if ident is not None and not ident.checked:
        console.print("identifiability: not checked (no bootstrap; drop --bootstrap 0 to check it)")
    elif ident is not None and ident.names:
        console.print(f"[red]{result.caveat()}[/]")
    for key, value in result.metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            console.print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    if result.law_kwargs:
        console.print(f"law settings: {result.law_kwargs}")
    if out is not None:
        console.print(f"saved {result.save(out)}")
    if not result.ok:
        raise typer.Exit(1)


def _load_law(spec: str):
    """A registered law name, or a JSON file written by `robustperf fit --out`."""
    from robustperf.scaling import create_law, load_fit

    path = Path(spec)
    if path.suffix == ".json" and path.exists():
        return load_fit(path)
    return create_law(spec)


def forecast_command(
    law: str = typer.Option(..., "--law", help="published law name (e.g. bartoldson2024_approach2) or a fit JSON"),
    fid: float = typer.Option(0.0, "--fid", help="FID of the training data (0 = unlimited real-quality data)"),
    flops: float = typer.Option(None, "--flops", help="training budget in FLOPs"),
    target_accuracy: float = typer.Option(None, "--target-accuracy", help="robust accuracy to reach (fraction)"),
    gpu: str = typer.Option("h100", "--gpu", help="GPU for time and energy (h100, h200, a100, v100, a6000)"),
    mfu: float = typer.Option(None, "--mfu", help="model FLOPs utilisation of that GPU (default 0.3: "
                              "robustperf.cost.constants.MFU_DEFAULT, REFERENCE.md s.6)"),
    k: float = typer.Option(None, "--k", help="FLOPs per parameter per sample (default 7822, TRADES-10 WRNs)"),
    pue: float = typer.Option(None, "--pue", help="power usage effectiveness (default 1.58)"),
    grid: str = typer.Option(None, "--grid", help="grid-intensity preset (default gcp_us_central1_2019)"),
    usd_per_kwh: float = typer.Option(None, "--usd-per-kwh"),
    usd_per_gpu_hour: float = typer.Option(None, "--usd-per-gpu-hour", help="cloud price for a rental estimate"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Forecast accuracy for a budget, or the budget for a target, with GPU-hours, kWh, CO2 and USD."""
    from robustperf.cost.constants import MFU_DEFAULT
    from robustperf.scaling import DEFAULT_FLOPS_PER_PARAM_SAMPLE, forecast

    if (flops is None) == (target_accuracy is None):
        fail("give exactly one of --flops or --target-accuracy")
    mfu = MFU_DEFAULT.value if mfu is None else mfu
    cost_kwargs: dict[str, Any] = {key: v for key, v in (("pue", pue), ("grid", grid), ("usd_per_kwh", usd_per_kwh),
                                          ("usd_per_gpu_hour", usd_per_gpu_hour)) if v is not None}
    with user_errors():
        result = forecast(_load_law(law), flops=flops, target_accuracy=target_accuracy, fid=fid,
                          k=DEFAULT_FLOPS_PER_PARAM_SAMPLE if k is None else k, gpu=gpu, mfu=mfu, name=law,
                          **cost_kwargs)
    if as_json:
        from robustperf.cost.constants import equivalents

        out = result.to_dict()
        kwh, co2 = result.cost.get("energy_kwh"), result.cost.get("co2_kg")
        out["equivalents"] = equivalents(None if kwh is None else kwh.value, None if co2 is None else co2.value)
        console.print_json(json.dumps(out, default=lambda o: None if o != o else o))
        return
    _print_forecast(result, gpu, mfu)


def _print_forecast(result, gpu: str, mfu: float) -> None:
    from rich.table import Table

    table = Table("quantity", "value [95 % interval]", title=f"forecast: {result.law} at FID {result.fid:g}")
    rows = [("training FLOPs", result.flops), ("adversarial loss", result.loss), ("robust accuracy", result.accuracy),
            ("N* (parameters)", result.N), ("D* (samples)", result.D)]
    labels = {"gpu_hours": f"GPU-hours ({gpu}, MFU {mfu:g})", "gpu_years": "GPU-years", "energy_kwh": "energy (kWh)",
              "co2_kg": "CO2 (kg)", "usd_electricity": "electricity (USD)", "usd_cloud": "cloud rental (USD)"}
    rows += [(labels[key], e) for key, e in result.cost.items()]
    for label, e in rows:
        if e is not None:
            table.add_row(label, "inf" if math.isinf(e.value) else str(e))
    console.print(table)
    if not result.reachable:
        console.print(f"[red]{result.message}[/]")
    if result.validity:
        console.print(f"validity: {result.validity}")
    if result.caveat:
        console.print(f"[red]caveat: {result.caveat}[/]")
    for name, c in result.constants.items():
        console.print(f"  {name} = {c['value']}  ({c['source']})")
    _print_equivalents(result.cost)


def _print_equivalents(cost: dict[str, Any]) -> None:
    """The forecast's kWh and CO2 as flights, household-years, car-km and a share of a country's emissions."""
    from robustperf.cost.constants import COUNTRY_ANNUAL_CO2_KG, COUNTRY_DEFAULT, EQUIVALENTS, describe_equivalents
    from robustperf.cost.constants import equivalents as to_equivalents

    kwh, co2 = cost.get("energy_kwh"), cost.get("co2_kg")
    values = to_equivalents(None if kwh is None else kwh.value, None if co2 is None else co2.value)
    if not values or not all(math.isfinite(v) for v in values.values()):
        return
    told = describe_equivalents(values)
    console.print(f"equivalent to: {told} (point values; the intervals scale alike)" if told else
                  "equivalent to: nothing (every everyday equivalent is below 1e-3 of its unit)")
    for eq in EQUIVALENTS.values():
        console.print(f"  1 {eq.unit} = {eq.per_unit.value:g} {eq.per_unit.unit}  ({eq.per_unit.source})")
    country = COUNTRY_ANNUAL_CO2_KG[COUNTRY_DEFAULT]
    console.print(f"  annual emissions ({COUNTRY_DEFAULT}) = {country.value:g} {country.unit}  ({country.source})")


def register(app: typer.Typer) -> None:
    app.command("fit")(fit_command)
    app.command("forecast")(forecast_command)
