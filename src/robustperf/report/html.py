"""`build_report`: a self-contained report.html (figures inline as SVG, no network) plus figures/*.png|svg.

The page is rendered from the Jinja2 templates in ``report/templates/`` (``report.html`` and its parts,
``report.css``), autoescaped: a string this module hands them (a title, a path, a caption) is escaped
there; the HTML fragments other modules build (the tables, the summary, the tuning and human-study
sections) and the figures' SVG arrive as `Markup`, escaped where they were built.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from robustperf.report import plots, tables
from robustperf.report.analysis import Analysis, analyze
from robustperf.report.backtest import backtest_table
from robustperf.report.extra import extra_figures
from robustperf.report.quality import report_figure
from robustperf.report.summary import plain_summary
from robustperf.store import load_index, write_json_atomic
from robustperf.store.io import write_bytes_atomic
from robustperf.sweep.study import FitSpec, StudyConfig

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")  # package data (pyproject: robustperf/**/*.html, *.css)
CSS = (TEMPLATES / "report.css").read_text()  # the page's style sheet, inlined by report.html
WIDE_FIGURES = ("pareto", "cost_breakdown", "tradeoff_front")


@dataclass(frozen=True)
class FigureSection:
    """One drawn figure of the page: its name (``fig-<name>``), caption and inline SVG."""

    name: str
    caption: str
    svg: Markup

    @property
    def wide(self) -> bool:
        """Spans the whole grid row."""
        return self.name in WIDE_FIGURES


@functools.cache
def templates() -> jinja2.Environment:
    """The report's templates, autoescaped; an undefined name is an error, never an empty string."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def _svg(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as <text>: smaller pages, selectable labels
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE so it can be inlined


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def make_figures(analysis: Analysis, overlay: Any = None) -> dict[str, tuple[str, Any]]:
    """name -> (caption, Figure) for every report figure (empty ones included; see `plots.empty_reason`)."""
    acc_fit = analysis.envelope.get("robust_acc")
    flops_overlay = None if overlay is None else overlay.dropna(subset=["flops"])
    _, missing_panels = plots.cost_panels(analysis.frame)
    cost_caption = ("Cost of each run: wall time, energy (x PUE), CO2 and USD (constants in each run's result.json). "
                    "Each energy panel says whether its numbers were metered (NVML, RAPL) or estimated (a stated "
                    "power x measured time; the power and its source are in each run's cost.energy_source)."
                    + (" Not drawn: " + "; ".join(missing_panels) + "." if missing_panels else ""))
    check = analysis.extrapolation.get("surface") or analysis.extrapolation.get("envelope")
    return {
        "robust_acc_vs_flops": ("Robust accuracy vs training FLOPs (log-log) with the envelope power law "
                                "(papers/002 Sec. 3.2).",
                                plots.accuracy_vs_flops(analysis.frame, acc_fit,
                                                        envelope_ids=analysis.envelope_ids.get("robust_acc"),
                                                        overlay=flops_overlay)),
        "loss_vs_flops": ("Adversarial loss vs FLOPs per model size; lines: the fitted L(N, D) along each size; "
                          "dashed: the compute-optimal frontier.",
                          plots.loss_vs_flops(analysis.frame, analysis.surface, k=analysis.k)),
        "iso_loss": ("Iso-loss contours of the fitted L(N, D), iso-FLOP lines and the compute-optimal path.",
                     plots.iso_loss_contours(analysis.frame, analysis.surface, k=analysis.k)),
        "optimal_allocation": ("Compute-optimal parameters N* and training samples D* vs budget.",
                               plots.optimal_allocation(analysis.frame, analysis.surface, k=analysis.k)),
        "pareto": ("Clean vs robust accuracy coloured by cost, and the robust accuracy vs cost Pareto front.",
                   plots.pareto(analysis.frame, overlay=overlay)),
        "extrapolation": ("Extrapolation check (Alabdulmohsin et al. 2022): the law refitted on the runs below the "
                          "top 20 % of compute predicts the held-out largest runs; red crosses mark a large error.",
                          plots.extrapolation_check(check)),
        "cost_breakdown": (cost_caption, plots.cost_breakdown(analysis.frame)),
        **_tradeoff_figures(analysis),
    }


def _tradeoff_figures(analysis: Analysis) -> dict[str, tuple[str, Any]]:
    """The TRADES beta sweep's Pareto front, when the runs sweep beta (papers/004: vary lambda, don't tune it)."""
    from robustperf.report.tradeoff import has_tradeoff_sweep, tradeoff_front

    if not has_tradeoff_sweep(analysis.frame):
        return {}
    return {"tradeoff_front": ("TRADES beta sweep: clean vs robust accuracy per beta and their Pareto front "
                               "(papers/004: the front is drawn by varying lambda instead of tuning it).",
                               tradeoff_front(analysis.frame))}


def build_report(source: str | Path | StudyConfig, out_dir: str | Path, *, study: StudyConfig | None = None,
                 overlays: Sequence[str | Path] | None = None, title: str | None = None,
                 bootstrap: int | None = None, human: Sequence[str | Path] | None = None) -> Path:
    """Write ``out_dir/report.html`` (self-contained), ``figures/*.png|svg`` and ``analysis.json``.

    Args:
        source: a runs directory, or a study (its ``runs_dir`` is read).
        out_dir: where the report goes.
        study: restrict to this study's runs and use its fit/forecast settings (else every run, defaults).
        overlays: published CSVs to overlay (`tables.load_overlay`).
        title: page title (default: the study's name or the directory's).
        bootstrap: resamples for every interval and identifiability check (default: the study's, else 200;
            0 skips them).
        human: human-alignment study directories (`robustperf human create`) whose scored section (validity,
            Table 4, Figure 8, valid/deceptive/ambiguous examples) the report embeds.

    Returns:
        Path of report.html.
    """
    if isinstance(source, StudyConfig):
        study, source = source, source.runs_dir
    runs_dir = Path(source)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir} is not a runs directory")
    rows = load_index(runs_dir)
    if study is not None:
        from robustperf.sweep.study import expand

        wanted = {c.run_id for c in expand(study)}
        rows = [r for r in rows if r["run_id"] in wanted]
    if not rows:
        raise FileNotFoundError(f"no runs in {runs_dir}" + (f" for study {study.name!r}" if study else ""))
    tuning = None
    if study is not None and study.tuning.grid:  # fit to the selected runs; show tuning cost beside them
        from robustperf.report.tuning import tuning_groups, tuning_table

        groups = tuning_groups(rows, list(study.tuning.grid), study.tuning.select_on)
        unselected = {r for g in groups for r in g.tuning_ids}
        rows = [r for r in rows if r["run_id"] not in unselected]
        tuning = Markup(tuning_table(groups, study.tuning.select_on))
    eval_key = study.evaluate.key if study is not None and study.evaluate.attacks else None
    fit_spec = study.fit if study is not None else FitSpec()
    if bootstrap is not None:
        if bootstrap < 0:
            raise ValueError(f"bootstrap must be >= 0 (0 skips intervals), got {bootstrap}")
        fit_spec = fit_spec.model_copy(update={"bootstrap": bootstrap})
    analysis = analyze(rows, fit=fit_spec, forecast=study.forecast if study else None, evaluation_key=eval_key)
    overlay = _overlays(overlays or [])
    figures = make_figures(analysis, overlay)
    figures.update(extra_figures(analysis, overlays or []))  # papers' figures and study vs zoo (report/extra.py)
    scored = _score_human(human or [])
    quality = report_figure(rows, evaluation_key=eval_key, metrics=tuple(fit_spec.metrics),
                            bootstrap=fit_spec.bootstrap, human=_human_level(scored))  # synthetic sets of
    # measured FID
    if quality is not None:
        figures["data_quality"] = quality
    out = Path(out_dir)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    sections: list[FigureSection] = []
    omitted: list[tuple[str, str]] = []
    for name, (caption, fig) in figures.items():
        reason = plots.empty_reason(fig)
        if reason is not None:  # an empty figure is left out with its reason, never drawn as a blank box
            omitted.append((name.replace("_", " "), reason))
            continue
        svg = _svg(fig)
        write_bytes_atomic(fig_dir / f"{name}.svg", svg.encode())
        write_bytes_atomic(fig_dir / f"{name}.png", _png(fig))
        _readable(fig_dir / f"{name}.svg", fig_dir / f"{name}.png")
        sections.append(FigureSection(name, caption, Markup(svg)))  # matplotlib's own SVG
    page = render_page(title or (study.name if study else runs_dir.name), analysis, sections, runs_dir,
                       omitted=omitted, forecast_spec=study.forecast if study is not None else None,
                       tuning=tuning, human=_human_sections(scored))
    target = out / "report.html"
    write_bytes_atomic(target, page.encode())
    write_json_atomic(out / "analysis.json", _analysis_json(analysis))
    _readable(target, out / "analysis.json", fig_dir, out)
    log.info("report written to %s", target)
    return target


def _score_human(study_dirs: Sequence[str | Path]) -> list[Any]:
    """Each human-alignment study directory loaded and scored once (papers/001's validity rule)."""
    from robustperf.human.report import load_scored

    return [load_scored(study_dir) for study_dir in study_dirs]


def _human_level(scored: Sequence[Any]) -> Any:
    """The human-level line for the data-quality figure: the first study that has human answers."""
    from robustperf.human.report import human_level_of

    for study, score in scored:
        try:
            return human_level_of(study, score)
        except ValueError as exc:  # no answers yet: its section says so; the figure draws no line
            log.info("no human-level line from %s: %s", study.root, exc)
    return None


def _human_sections(scored: Sequence[Any]) -> list[Markup]:
    """The human-alignment study sections (papers/001 Sec. 4), one per scored study (escaped where built)."""
    if not scored:
        return []
    from robustperf.human.report import study_section_from_score

    return [Markup(study_section_from_score(s, sc)) for s, sc in scored]


def _readable(*paths: Path) -> None:
    """Give report files the mode a plain ``open()`` would (0644 under the usual umask 022).

    The atomic writer creates its temporary file 0600 (mkstemp); a report is meant to be copied to a
    shared web directory and read by others, so its files get 0666 & ~umask (directories 0777 & ~umask).
    """
    umask = os.umask(0)
    os.umask(umask)
    for path in paths:
        if path.exists():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _overlays(paths: Sequence[str | Path]) -> Any:
    if not paths:
        return None
    import pandas as pd

    return pd.concat([tables.load_overlay(p) for p in paths], ignore_index=True)


def render_page(title: str, analysis: Analysis, figures: Sequence[FigureSection], runs_dir: Path, *,
                omitted: Sequence[tuple[str, str]] = (), forecast_spec: Any = None, tuning: Markup | None = None,
                human: Sequence[Markup] = ()) -> str:
    """report.html's text from its templates.

    Args:
        title: the page's title (escaped).
        analysis: the fits, forecasts, checks and runs the tables show.
        figures: the drawn figures, in page order.
        runs_dir: where the runs are (shown, escaped).
        omitted: (figure name, why it was not drawn) for each empty figure.
        forecast_spec: the study's forecast settings, for the summary.
        tuning: the tuning-cost table (before the figures), when the study tunes.
        human: the human-alignment study sections (at the end).
    """
    frame = analysis.frame
    total = {c: frame[c].sum(min_count=1) for c in ("flops", "seconds", "energy_kwh", "co2_kg", "usd") if c in frame}
    energy = total.get("energy_kwh")
    energy_text = ("energy not measured (cost.energy_meter=none)" if energy is None or energy != energy
                   else Markup("{} kWh ({})").format(_number(energy), plots.energy_label(frame)))
    counts = {"total": len(frame), **{s: int((frame["status"] == s).sum()) for s in ("finished", "failed", "corrupt")}}
    return templates().get_template("report.html").render(
        title=title, favicon=base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode(),
        summary=Markup(plain_summary(analysis, forecast_spec)), counts=counts, runs_dir=str(runs_dir),
        totals={"flops": _number(total.get("flops", 0)), "seconds": _number(total.get("seconds", 0)),
                "energy": energy_text},
        robust_source=analysis.robust_source, generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        fits=Markup(tables.fits_table(analysis)), forecasts=Markup(tables.forecast_table(analysis.forecasts)),
        backtest=Markup(backtest_table(analysis.backtest, analysis.notes)),
        extrapolation=Markup(tables.extrapolation_table(analysis.extrapolation)), tuning=tuning,
        figures=figures, omitted=omitted, flags=Markup(tables.flags_list(analysis.flags, analysis.notes)),
        leaderboard=Markup(tables.leaderboard_table(frame)), human=human)


def _number(value: Any) -> Markup:
    """A number as `tables.fmt` writes it (already escaped there)."""
    return Markup(tables.fmt(float(value)))


def _analysis_json(analysis: Analysis) -> dict[str, Any]:
    return {
        "robust_source": analysis.robust_source,
        "k_flops_per_param_sample": analysis.k,
        "envelope": {m: f.to_dict() for m, f in analysis.envelope.items()},
        "surface": analysis.surface.to_dict() if analysis.surface is not None else None,
        "loss_to_accuracy": analysis.loss_to_accuracy.to_dict() if analysis.loss_to_accuracy is not None else None,
        "forecasts": analysis.forecasts,
        "extrapolation": {name: c.to_dict() for name, c in analysis.extrapolation.items()},
        "backtest": analysis.backtest.to_dict() if analysis.backtest is not None else None,
        "bootstrap": analysis.bootstrap,
        "summary": plain_summary(analysis, None, markup=False),
        "flags": [list(f) for f in analysis.flags],
        "notes": analysis.notes,
    }
