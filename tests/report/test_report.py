"""The report: planted laws recovered, a self-contained page, every figure visible in headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robustperf.report import analyze, build_report, iso_loss_contours, load_overlay
from robustperf.store import load_index
from robustperf.sweep import FitSpec, ForecastSpec, study_from_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import planted_runs  # noqa: E402

SHARED = Path("/work/shared/data")
FIGURES = ("robust_acc_vs_flops", "loss_vs_flops", "iso_loss", "optimal_allocation", "pareto", "extrapolation",
           "cost_breakdown", "accuracy_vs_flops_human", "overhead_vs_model_size")  # the last two: report/extra.py


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    planted_runs.write_planted_runs(root)
    return root


@pytest.fixture(scope="module")
def report(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = study_from_dict({"name": "planted", "base": {"name": "planted", "optim": {"epochs": 2}},
                             "grid": {"model.kwargs.width": [4, 8, 16, 32], "data.n_train": [300, 600, 1200, 2400]},
                             "fit": {"bootstrap": 20}, "forecast": {"robust_acc_targets": [0.7],
                                                                   "flops_budgets": [1e13]}})
    return build_report(runs_dir, tmp_path_factory.mktemp("report"), study=study)


def test_analysis_recovers_the_planted_laws(runs_dir: Path) -> None:
    analysis = analyze(load_index(runs_dir), fit=FitSpec(bootstrap=0),
                       forecast=ForecastSpec(robust_acc_targets=(0.7,), flops_budgets=(1e13,)))
    p = analysis.surface.params
    assert analysis.surface.ok
    assert abs(p["alpha"] - planted_runs.PLANTED["alpha"]) < 0.05
    assert abs(p["beta"] - planted_runs.PLANTED["beta"]) < 0.05
    assert abs(p["E"] - planted_runs.PLANTED["E"]) < 0.05
    assert analysis.k == pytest.approx(planted_runs.K_FLOPS)
    # the report's map is the bounded logit-linear one (issue 27); on the planted line's range it follows it
    assert analysis.loss_to_accuracy.law == "logit_linear"
    lo, hi = analysis.loss_to_accuracy.metrics["x_range"]
    losses = np.linspace(lo, hi, 50)
    assert np.max(np.abs(analysis.loss_to_accuracy.to_law()(losses) - (1.2 - 0.6 * losses))) < 0.02
    env = analysis.envelope["robust_acc"]
    assert env.ok and env.params["alpha"] > 0  # more compute, more robustness
    # the surface forecast for 70 % lands where the planted law says the compute-optimal model reaches it
    row = next(r for r in analysis.forecasts if r["target"] == "robust acc 70%" and "L(N, D)" in r["law"])
    n_star, d_star = row["N"][0], row["D"][0]
    assert 1.2 - 0.6 * planted_runs.planted_loss(n_star, d_star) == pytest.approx(0.7, abs=0.02)
    assert row["flops"][0] == pytest.approx(planted_runs.K_FLOPS * n_star * d_star, rel=1e-6)
    flags = dict(analysis.flags)
    assert any("robust_above_clean" in f for f in flags.values())
    assert any(f.startswith("failed: TrainingError") for f in flags.values())


def test_too_small_a_grid_skips_the_surface_with_a_reason(tmp_path: Path) -> None:
    planted_runs.write_planted_runs(tmp_path, widths=(4, 8), n_trains=(300, 600, 1200), failed=0)
    analysis = analyze(load_index(tmp_path), fit=FitSpec(bootstrap=0))
    assert analysis.surface is None
    assert any("3 model sizes x 3 data sizes, have 2 x 3" in n for n in analysis.notes)
    fig = iso_loss_contours(analysis.frame, None, k=None)
    assert "no L(N, D) law" in fig.axes[0].texts[0].get_text()


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text()
    assert page.count("<svg") >= len(FIGURES)
    assert not re.search(r"""(src|href)\s*=\s*["']https?://""", page)  # nothing to fetch
    assert "<script" not in page
    for name in FIGURES:
        assert (report.parent / "figures" / f"{name}.png").stat().st_size > 5000
        assert (report.parent / "figures" / f"{name}.svg").exists()
    data = json.loads((report.parent / "analysis.json").read_text())
    assert data["surface"]["status"] == "ok" and data["forecasts"]
    assert "robust_above_clean" in page and "class='ci'" in page  # flags and bootstrap intervals shown


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell"):
        path = shutil.which(name)
        if path:
            return path
    return None


BOX_SCRIPT = """<pre id="boxes"></pre><script>
window.addEventListener('load', () => {
  const out = {};
  document.querySelectorAll('figure.figure').forEach(f => {
    const r = f.querySelector('svg').getBoundingClientRect();
    out[f.id] = [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
  });
  document.getElementById('boxes').textContent = JSON.stringify(out);
});
</script>"""


def _chromium(browser: str, *args: str) -> subprocess.CompletedProcess:
    # 7000 px: the report gained a backtest table and a longer forecast table (issue 27)
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,7000",
            "--force-device-scale-factor=1"]
    return subprocess.run([*base, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(_browser() is None, reason="no chromium/chrome binary on PATH (CI: apt-get install chromium)")
def test_report_renders_every_figure_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    from matplotlib.image import imread

    browser = _browser()
    probe = tmp_path / "probe.html"  # same page plus a script that prints each figure's box
    probe.write_text(report.read_text().replace("</body>", BOX_SCRIPT + "</body>"))
    dom = _chromium(browser, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()).stdout
    boxes = json.loads(re.search(r'<pre id="boxes">(.*?)</pre>', dom, re.S).group(1))
    assert sorted(boxes) == sorted(f"fig-{n}" for n in FIGURES)

    shot = tmp_path / "shot.png"
    _chromium(browser, f"--screenshot={shot}", report.as_uri())
    pixels = imread(shot)[..., :3]  # (H, W, 3) floats in [0, 1]
    for name, (x, y, w, h) in boxes.items():
        assert w > 300 and h > 200, (name, w, h)
        assert y + h <= pixels.shape[0], f"{name} lies below the screenshot; enlarge --window-size"
        area = pixels[int(y):int(y + h), int(x):int(x + w)]
        ink = (area.min(axis=2) < 0.9).mean()  # share of non-white pixels
        colour = (area.max(axis=2) - area.min(axis=2) > 0.25).mean()  # data is drawn in colour, messages in grey
        assert ink > 0.03 and colour > 0.005, f"{name} looks blank (ink {ink:.3f}, colour {colour:.4f})"


def test_overlay_of_published_runs(runs_dir: Path, tmp_path: Path) -> None:
    csv = SHARED / "debenedetti2023_timm_adv_training" / "results.csv"
    if not csv.exists():
        pytest.skip("shared data not present")
    overlay = load_overlay(csv)
    assert len(overlay) == 319 and (overlay["flops"] > 1e15).all() and overlay["robust_acc"].between(0, 1).all()
    rb = load_overlay(SHARED / "robustbench" / "robustbench_linf_leaderboard.csv")
    assert rb["clean_acc"].between(0, 1).all() and len(rb) == 99  # the CIFAR-10 entries
    with pytest.raises(ValueError, match="need Debenedetti columns"):
        bad = tmp_path / "bad.csv"
        bad.write_text("a,b\n1,2\n")
        load_overlay(bad)


def test_a_degenerate_surface_draws_no_allocation_and_says_why(runs_dir: Path) -> None:
    from robustperf.report import plots
    from robustperf.scaling import FitResult

    frame = analyze(load_index(runs_dir), fit=FitSpec(bootstrap=0)).frame
    degenerate = FitResult(params={"A": 1.0, "B": 1e131, "E": 0.0, "alpha": 0.06, "beta": 37.0},
                           status="degenerate", objective=0.0, n_points=9, law="chinchilla")
    for draw in (plots.iso_loss_contours, plots.optimal_allocation):
        text = draw(frame, degenerate, k=300.0).axes[0].texts[0].get_text()
        assert "fit is degenerate" in text, draw.__name__


def test_report_opens_with_a_plain_summary_and_shows_the_extrapolation_check(report: Path) -> None:
    page = report.read_text()
    summary = html.unescape(page.split("What this study says</h2>")[1].split("</div>")[0])
    for words in ("alpha = ", "beta = ", "N* = ", "D* = ", "bootstrap intervals over 20 resamples",
                  "held-out runs' robust accuracy with a mean absolute error of", "The best reached"):
        assert words in summary, words
    data = json.loads((report.parent / "analysis.json").read_text())
    check = data["extrapolation"]["surface"]
    assert check["rows"] and check["n_train"] + len(check["rows"]) == 16
    # the planted law is exact up to 0.2 % noise, so the refit below the top compute quantile extrapolates well
    assert check["mean_abs_error"] < 0.02 and not check["large"]
    assert all(r["validity"] and r["held_out"] for r in data["forecasts"])
    assert "Extrapolation check (each law in its own unit)</h2>" in page and "mean held-out error" in page
    assert "Backtest in robust accuracy</h2>" in page and "t-test p" in page
    assert data["backtest"]["passed"] and data["backtest"]["mean_abs_error"] < 0.02  # the planted pipeline holds


def test_report_files_are_readable_by_others(report: Path) -> None:
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    for path in (report, report.parent / "analysis.json", report.parent / "figures" / "iso_loss.svg"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_empty_figures_and_cost_panels_are_omitted_with_a_reason(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    planted_runs.write_planted_runs(runs, widths=(4, 8), n_trains=(300, 600, 1200), failed=0)
    for rd in runs.iterdir():  # runs without an energy meter: no kWh, CO2 or USD
        rec = rd / "result.json"
        if rec.exists():
            data = json.loads(rec.read_text())
            data["cost"] = {k: v for k, v in data["cost"].items() if k in ("train_flops", "seconds")}
            rec.write_text(json.dumps(data))
    from robustperf.store import rebuild_index

    rebuild_index(runs)
    page = build_report(runs, tmp_path / "out", bootstrap=0).read_text()
    assert "id='fig-iso_loss'" not in page and "id='fig-optimal_allocation'" not in page
    omitted = page.split("Not drawn (nothing to show)")[1]
    assert "iso loss" in omitted and "no L(N, D) law was fitted" in omitted
    assert "id='fig-cost_breakdown'" in page and "Not drawn: energy (kWh, x PUE): no finished run recorded it" in page
    assert not (tmp_path / "out" / "figures" / "iso_loss.png").exists()


def _tick_boxes(fig) -> list[list]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    out = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels(which="both")
                     if t.get_visible() and t.get_text() and ax.get_xlim()]
            out.append(boxes)
    return out


def test_no_tick_labels_overlap(runs_dir: Path) -> None:
    from robustperf.report import make_figures

    analysis = analyze(load_index(runs_dir), fit=FitSpec(bootstrap=0),
                       forecast=ForecastSpec(flops_budgets=(1e13,)))
    for name, (_, fig) in make_figures(analysis).items():
        for boxes in _tick_boxes(fig):
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    assert not a.overlaps(b), f"{name}: tick labels overlap"


def test_overlay_points_are_labelled_per_source(runs_dir: Path) -> None:
    import pandas as pd

    from robustperf.report import pareto

    frame = analyze(load_index(runs_dir), fit=FitSpec(bootstrap=0)).frame
    overlay = pd.DataFrame({"label": ["RobustBench"] * 3 + ["Debenedetti et al. 2023"] * 3, "flops": [float("nan")] * 3
                            + [1e16, 1e17, 1e18], "clean_acc": [0.8, 0.85, 0.9] * 2, "robust_acc": [0.5, 0.55, 0.6] * 2})
    labels = [t.get_text() for t in pareto(frame, overlay=overlay).axes[0].get_legend().get_texts()]
    assert "RobustBench" in labels and "Debenedetti et al. 2023" in labels


def test_every_figure_of_an_empty_frame_says_why() -> None:
    import pandas as pd

    from robustperf.report import plots

    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in ("flops", "robust_acc", "clean_acc", "adv_loss",
                                                              "n_params", "samples_seen", "seconds")})
    frame["status"], frame["run_id"] = pd.Series(dtype=str), pd.Series(dtype=str)
    figures = [plots.accuracy_vs_flops(frame), plots.loss_vs_flops(frame), plots.iso_loss_contours(frame, None, k=None),
               plots.optimal_allocation(frame, None, k=None), plots.pareto(frame), plots.cost_breakdown(frame),
               plots.extrapolation_check(None)]
    assert all(plots.empty_reason(f) for f in figures), [plots.empty_reason(f) for f in figures]
