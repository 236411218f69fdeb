"""`robustperf plot KIND DATA`: one of the papers' or the zoo's figures from a table, runs directory or fit."""

from __future__ import annotations

from pathlib import Path

import typer

from robustperf.cli.common import console, fail, user_errors

# = robustperf.report.kinds.PLOTS (not imported here: matplotlib stays out of `robustperf --help`)
KINDS = ("params-vs-year", "flops-vs-year", "train-flops-vs-year", "accuracy-vs-year", "frontier",
         "accuracy-vs-flops", "overhead", "predictor", "asr-vs-round", "asr-vs-size")


def plot_command(
    kind: str = typer.Argument(..., help=f"figure: {', '.join(KINDS)}"),
    data: str = typer.Argument(..., help="table, runs directory, LLM study CSV, or a law (overhead)"),
    out: Path = typer.Option(None, "--out", help="output file (.png, .svg, .pdf; default KIND.png)"),
    dataset: str = typer.Option(None, "--dataset", help="zoo kinds: the data set to keep"),
    eras: str = typer.Option(None, "--eras", help="*-vs-year: eras such as 2018-2020,2021-2024"),
    target_year: float = typer.Option(None, "--target-year", help="accuracy-vs-year: year to forecast"),
    ceiling: float = typer.Option(None, "--ceiling", help="accuracy-vs-year: upper asymptote"),
    select: str = typer.Option(None, "--select", help="accuracy-vs-year: best_per_year, record or all"),
    quantile: float = typer.Option(None, "--quantile", help="frontier: regression quantile"),
    law: str = typer.Option(None, "--law", help="accuracy-vs-flops: a published law or a fit JSON"),
    human_level: float = typer.Option(None, "--human-level", help="accuracy-vs-flops: human-level accuracy"),
    flops: float = typer.Option(None, "--flops", help="overhead: the budget whose optimum is the reference"),
    fid: float = typer.Option(None, "--fid", help="overhead: data quality (FID)"),
    k: float = typer.Option(None, "--k", help="FLOPs per parameter per sample (default 7822)"),
    features: str = typer.Option(None, "--features", help="predictor: comma-separated feature columns"),
    target: str = typer.Option(None, "--target", help="predictor: the column to predict"),
    bootstrap: int = typer.Option(None, "--bootstrap", help="resamples for intervals"),
    seed: int = typer.Option(None, "--seed"),
) -> None:
    """Draw one figure and write it to a file."""
    from robustperf.report.kinds import build_plot
    from robustperf.report.zoo import save_figure

    target_path = out or Path(f"{kind}.png")
    with user_errors():
        fig = build_plot(kind, data, dataset=dataset, eras=eras, target_year=target_year, ceiling=ceiling,
                         select=select, quantile=quantile, law=law, human_level=human_level, flops=flops, fid=fid,
                         k=k, features=features, target=target, bootstrap=bootstrap, seed=seed)
        console.print(f"wrote {save_figure(fig, target_path)}")


def register(app: typer.Typer) -> None:
    app.command("plot")(plot_command)


def fit_predictor(data: Path, features: str | None, target: str, *, seed: int = 0, out: Path | None = None) -> None:
    """`robustperf fit DATA --law predictor --features a,b --y target`: papers/002's gradient-boosting predictor.

    Prints R² on both parts of the 70:30 split and the feature importances; with ``--out`` writes the result
    as JSON and the parity plot with the importances (papers/002 Fig. 1b/1c) next to it as PNG.
    """
    from rich.table import Table

    from robustperf.report.papers import predictor_figure
    from robustperf.report.zoo import save_figure
    from robustperf.scaling import fit_robustness_predictor
    from robustperf.scaling.tables import load_table

    if not features:
        fail("--law predictor needs --features, the comma-separated recipe columns (the target is --y)")
    with user_errors():
        result = fit_robustness_predictor(load_table(data), [f.strip() for f in features.split(",")], target,
                                          seed=seed)
    table = Table("feature", "importance", title=f"predictor of {target} on {data} "
                  f"({result.n_train} train / {result.n_test} test rows)")
    for name, value in result.importances.items():
        table.add_row(name, f"{value:.3f}")
    console.print(table)
    console.print(f"R² train {result.r2_train:.4f}  test {result.r2_test:.4f}")
    if out is not None:
        from robustperf.store.io import write_json_atomic

        write_json_atomic(out, result.to_dict())
        with user_errors():
            figure = save_figure(predictor_figure(result, target=target), out.with_suffix(".png"))
        console.print(f"saved {out} and {figure}")
