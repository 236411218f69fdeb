"""`robustperf trends TABLE`: doubling times, eras, the robust-accuracy trend and the efficiency frontier of a zoo."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from robustperf.cli.common import console, fail, user_errors


def _interval(e) -> str:
    if e.low is None or e.high is None:
        return f"{e.value:.3g}"
    high = "inf" if math.isinf(e.high) else f"{e.high:.3g}"
    return f"{e.value:.3g} [{e.low:.3g}, {high}]"


def _mapping(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        zoo, sep, source = pair.partition("=")
        if not sep or not zoo.strip() or not source.strip():
            fail(f"--column {pair!r}: write ZOO=SOURCE, e.g. --column fwd_flops=flops")
        out[zoo.strip()] = source.strip()
    return out


def trends_command(
    table: Path = typer.Argument(..., help="RobustBench-style CSV/Parquet: year, parameters, FLOPs, accuracy"),
    dataset: list[str] = typer.Option(None, "--dataset", help="data set(s) to analyse (default: each in the table)"),
    column: list[str] = typer.Option(None, "--column", help="ZOO=SOURCE column mapping, e.g. fwd_flops=flops "
                                     "(zoo columns: year, n_params, fwd_flops, train_flops, robust_acc, clean_acc, "
                                     "dataset, model_id)"),
    eras: str = typer.Option(None, "--eras", help="given eras, e.g. 2018-2020,2021-2024 (default: detect a break)"),
    recipes: Path = typer.Option(None, "--recipes", help="CSV of model_id, epochs, n_train, method[, attack_steps] "
                                 "for training FLOPs"),
    target_year: list[float] = typer.Option([2027.0], "--target-year", help="forecast robust accuracy for this year"),
    select: str = typer.Option("best_per_year", "--select", help="accuracy trend on best_per_year, record or all"),
    ceiling: float = typer.Option(1.0, "--ceiling", help="upper asymptote of robust accuracy (e.g. 0.9 human level)"),
    quantile: float = typer.Option(0.9, "--quantile", help="frontier quantile (0.9: the 10 % most efficient)"),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="resamples for the intervals"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("trends"), "--out", help="directory for figures (PNG) and trends.json"),
) -> None:
    """Fit log-linear trends of parameters and FLOPs against year (with doubling times), forecast robust accuracy."""
    from rich.table import Table

    from robustperf.report.zoo import save_figure, trend_figures
    from robustperf.scaling.trends import add_training_flops, load_zoo, parse_eras, write_trends, zoo_trends

    with user_errors():
        given_eras = parse_eras(eras) if eras else None
        full = load_zoo(table, columns=_mapping(column or []))
        if recipes is not None:
            full = add_training_flops(full, recipes)
        names = list(dataset or []) or sorted(set(full["dataset"].astype(str))) or [""]
        unknown = [d for d in names if d not in set(full["dataset"].astype(str))]
        if unknown:
            fail(f"no rows of data set(s) {unknown} in {table}; it has {sorted(set(full['dataset'].astype(str)))}")
        results = [zoo_trends(full[full["dataset"].astype(str) == name].reset_index(drop=True), label=name,
                              eras=given_eras, target_years=target_year, select=select, ceiling=ceiling,
                              quantile=quantile, bootstrap=bootstrap, seed=seed) for name in names]
    for res in results:
        t = Table("quantity", "years", "models", "doubling (years) [95 %]", "x per year", "R²",
                  title=f"trends of {res.label or table.name} ({len(res.zoo)} models)")
        for metric, e in res.trends.items():
            for trend, (lo, hi) in zip(e.trends, e.bounds, strict=True):
                t.add_row(metric, f"{lo:.0f}-{hi:.0f}", str(trend.n_points), _interval(trend.doubling_years),
                          _interval(trend.growth_per_year), f"{trend.r2:.2f}")
        console.print(t)
        for metric, e in res.trends.items():
            if e.detected:
                console.print(f"{metric}: era break after {e.breakpoint:.0f} (BIC {e.bic_split:.1f} vs {e.bic_one:.1f})")
        if res.accuracy is not None:
            for year in res.target_years:
                console.print(f"robust accuracy in {year:g} ({res.accuracy.selection}, logit trend, ceiling "
                              f"{res.accuracy.ceiling:g}): {_interval(res.accuracy.predict(year))}")
        if res.frontier is not None:
            p = {k: res.frontier.fit.estimate(k) for k in ("alpha", "beta", "gamma")}
            console.print(f"frontier ({res.frontier.quantile:g}-quantile, {res.frontier.fit.metrics.compute}): "
                          f"log10(1/err) = {p['alpha']} + {p['beta']} log10(C) + {p['gamma']} (year - "
                          f"{res.frontier.year0:g})")
        for part, why in res.skipped.items():
            console.print(f"[yellow]skipped {part}:[/] {why}")
        folder = out / res.label if res.label else out
        with user_errors():
            for name, fig in trend_figures(res).items():
                save_figure(fig, folder / f"{name}.png")
            console.print(f"figures and {write_trends(res, folder / 'trends.json')} written")


def register(app: typer.Typer) -> None:
    app.command("trends")(trends_command)
