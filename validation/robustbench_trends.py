"""Doubling times of RobustBench models (papers/004 Sec. XIV.A and C) with robustperf.scaling.trends.

On the shipped l-inf leaderboard (167 entries; 144 with parameter and forward-FLOP counts) this fits
log10(parameters) and log10(forward FLOPs per image) against year per data set, with 95 % bootstrap
intervals of the doubling time, and checks how much the answer depends on the choices the table leaves
open: which year (arXiv id or venue) and which parameter count (used in the forward pass or registered).
It also runs the era breakpoint search, the bounded robust-accuracy forecast and the 0.9-quantile
efficiency frontier. The data stay outside the package (see data/robustbench/SOURCE.md):

    OMP_NUM_THREADS=1 python validation/robustbench_trends.py [CSV] [--out validation/results/robustbench_trends.md]
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import time
from pathlib import Path

from robustperf.scaling.trends import (
    detect_eras,
    fit_accuracy_trend,
    fit_efficiency_frontier,
    fit_log_trend,
    load_zoo,
)

DEFAULT_CSV = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "robustbench"
               / "robustbench_linf_leaderboard.csv")
DATASETS = ("cifar10", "cifar100", "imagenet")
BOOTSTRAP = 4000  # as many resamples as Besiroglu et al. 2024 use for their intervals (REFERENCE.md s.4)


def _ci(e, digits: int = 3) -> str:
    if e.low is None:
        return f"{e.value:.{digits}g}"
    high = "∞" if math.isinf(e.high) else f"{e.high:.{digits}g}"
    return f"{e.value:.{digits}g} [{e.low:.{digits}g}, {high}]"


def headline(csv: Path, seed: int) -> list[str]:
    lines = ["## Doubling times (year = arXiv year in the model id; parameters used in the forward pass)", "",
             f"Log-linear least squares of log10(quantity) on year; 95 % percentile intervals from {BOOTSTRAP} "
             "bootstrap resamples of the models.", "",
             "| data set | quantity | models | years | doubling time (years) [95 %] | growth per year [95 %] "
             "| growth over 5 years | R^2 |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for ds in DATASETS:
        zoo = load_zoo(csv, dataset=ds)
        for metric, label in (("n_params", "parameters"), ("fwd_flops", "forward FLOPs / image")):
            t = fit_log_trend(zoo["year"], zoo[metric], metric=metric, bootstrap=BOOTSTRAP, seed=seed)
            g = t.growth_per_year.value
            lines.append(f"| {ds} | {label} | {t.n_points} | {t.first_year:.0f}-{t.last_year:.0f} | "
                         f"{_ci(t.doubling_years)} | {_ci(t.growth_per_year)} | {g**5:.3g}x | {t.r2:.3f} |")
    return lines


def sensitivity(csv: Path, seed: int) -> list[str]:
    lines = ["## How much the choices matter (CIFAR-10, 1000 resamples)", "",
             "| year column | parameter column | quantity | models | doubling time (years) [95 %] | R^2 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for year_col in ("year_in_id", "year_venue"):
        for n_col in ("n_params_used_in_forward", "n_params_total"):
            zoo = load_zoo(csv, dataset="cifar10", columns={"year": year_col, "n_params": n_col})
            for metric in ("n_params", "fwd_flops"):
                if metric == "fwd_flops" and n_col != "n_params_used_in_forward":
                    continue
                t = fit_log_trend(zoo["year"], zoo[metric], metric=metric, bootstrap=1000, seed=seed)
                col = n_col if metric == "n_params" else "fwd_flops_per_image"
                lines.append(f"| {year_col} | {col} | {metric} | {t.n_points} | {_ci(t.doubling_years)} | "
                             f"{t.r2:.3f} |")
    return lines


def eras(csv: Path, seed: int) -> list[str]:
    lines = ["## Era breakpoints (BIC: two lines + breakpoint vs one line; each era >= 5 models, 2 years)", "",
             "| data set | quantity | BIC one line | BIC best split | split after | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    for ds in DATASETS:
        zoo = load_zoo(csv, dataset=ds)
        for metric in ("n_params", "fwd_flops"):
            e = detect_eras(zoo["year"], zoo[metric], metric=metric, bootstrap=0, seed=seed)
            split = "–" if math.isnan(e.bic_split) else f"{e.bic_split:.1f}"
            after = "–" if e.breakpoint is None else f"{e.breakpoint:.0f}"
            verdict = ("two eras: " + ", ".join(f"{lo:.0f}-{hi:.0f} doubling {t.doubling_years.value:.2g} y"
                                                for t, (lo, hi) in zip(e.trends, e.bounds, strict=True))
                       if e.detected else "one era")
            lines.append(f"| {ds} | {metric} | {e.bic_one:.1f} | {split} | {after} | {verdict} |")
    return lines


def accuracy(csv: Path, seed: int) -> list[str]:
    lines = ["## Robust accuracy forecasts (logit trend on the best model of each year; bounded to [0, 1])", "",
             "AutoAttack accuracy (RobustBench's `autoattack_acc`). 1000 resamples of the per-year best models; "
             "with 5-7 points these intervals are wide and say more about the method than about 2027.", "",
             "| data set | points | slope (logit / year) [95 %] | 2025 [95 %] | 2027 [95 %] |",
             "| --- | --- | --- | --- | --- |"]
    for ds in DATASETS:
        zoo = load_zoo(csv, dataset=ds)
        t = fit_accuracy_trend(zoo["year"], zoo["robust_acc"], bootstrap=1000, seed=seed)
        lines.append(f"| {ds} | {t.fit.n_points} | {_ci(t.fit.estimate('slope'))} | {_ci(t.predict(2025))} | "
                     f"{_ci(t.predict(2027))} |")
    return lines


def frontier(csv: Path, seed: int) -> list[str]:
    lines = ["## Efficiency frontier (Thompson et al. 2020: 0.9-quantile regression)", "",
             "log10(1 / error) = alpha + beta log10(forward FLOPs per image) + gamma (year - first year), "
             "AutoAttack error; 500 resamples.", "",
             "| data set | models | beta (per decade of FLOPs) [95 %] | gamma (per year) [95 %] | share on/below | "
             "forward FLOPs for 70 % in 2025 [95 %] |", "| --- | --- | --- | --- | --- | --- |"]
    for ds in DATASETS:
        zoo = load_zoo(csv, dataset=ds)
        f = fit_efficiency_frontier(zoo["fwd_flops"], zoo["robust_acc"], zoo["year"], bootstrap=500, seed=seed,
                                    compute_name="fwd_flops")
        lines.append(f"| {ds} | {f.fit.n_points} | {_ci(f.fit.estimate('beta'))} | {_ci(f.fit.estimate('gamma'))} | "
                     f"{f.fit.metrics['coverage']:.2f} | {_ci(f.compute_for(0.70, 2025.0))} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown results here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.csv.is_file():
        raise SystemExit(f"{args.csv} not found: pass the RobustBench leaderboard CSV (data/robustbench/)")
    start = time.perf_counter()
    parts = [headline(args.csv, args.seed), sensitivity(args.csv, args.seed), eras(args.csv, args.seed),
             accuracy(args.csv, args.seed), frontier(args.csv, args.seed)]
    seconds = time.perf_counter() - start
    parts.append(["## Reading", "",
                  "- R^2 is low on CIFAR: every year publishes small and large models side by side (WRN-28-10 and "
                  "WRN-34-10 never went away), so the fit describes the drift of the typical entry, not of the "
                  "largest one; the bootstrap intervals carry that spread.",
                  "- Years are whole years (the table has no months), so the resolution of an era break is a year.",
                  "- Training FLOPs need epochs and samples per epoch, which the leaderboard does not hold; "
                  "`robustperf trends --recipes recipes.csv` adds them when a recipe table is given.",
                  "- CIFAR-100's doubling interval reaches infinity: its slope interval includes zero growth."])
    text = "\n".join([f"# Doubling times of RobustBench l-inf models ({args.csv.name})", "",
                      *(line for part in parts for line in [*part, ""]),
                      f"Ran in {seconds:.0f} s on {platform.machine()} ({platform.python_version()}, 1 thread), "
                      "seed " f"{args.seed}: `OMP_NUM_THREADS=1 python validation/robustbench_trends.py --out "
                      "validation/results/robustbench_trends.md`.", ""])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
