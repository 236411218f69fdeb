"""Figure 8 and the study's HTML section: accuracy by labeller and confidence, Table 4, example grids.

`study_section_html` returns a self-contained ``<section>`` (images and figure inlined as base64), so
it can be pasted into the run report; `write_study_report` wraps it into ``STUDY/report.html``.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustperf.human.agreement import describe
from robustperf.human.scoring import CONFIDENCE_SLICES, StudyScore
from robustperf.human.study import Study
from robustperf.store.io import write_bytes_atomic

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222}
table.data{border-collapse:collapse;font-size:.9em;margin:8px 0} table.data td,table.data th{border:1px solid #ddd;
padding:3px 8px;text-align:right} table.data th{background:#f4f4f4} table.data td:first-child{text-align:left}
.examples{display:flex;flex-wrap:wrap;gap:10px} .example{border:1px solid #ddd;padding:4px;font-size:.75em}
.example img{image-rendering:pixelated;width:64px;height:64px;margin:1px} .note{color:#666;font-size:.9em}
"""


def figure8(score: StudyScore) -> Any:
    """papers/001 Figure 8: each labeller's clean vs adversarial accuracy for any / low / high confidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in score.labellers]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    width = 0.38
    for ax, conf in zip(axes, CONFIDENCE_SLICES, strict=True):
        for offset, version, colour in ((-width / 2, "clean", "#4c72b0"), (width / 2, "adv", "#dd8452")):
            vals = [100 * (s.acc(version, conf) or 0.0) for s in score.labellers]
            ns = [s.accuracy[(version, conf)].n for s in score.labellers]
            bars = ax.bar([i + offset for i in range(len(names))], vals, width, color=colour,
                          label="clean" if version == "clean" else "adversarial")
            for bar, n in zip(bars, ns, strict=True):
                ax.annotate(f"n={n}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=7)
        ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set_title(f"{conf} confidence")
        ax.set_ylim(0, 105)
    axes[0].set_ylabel("accuracy (%)")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.suptitle("Accuracy by labeller and confidence on the images the model misclassifies (papers/001 Fig. 8)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _png_b64(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode()


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def _img(study: Study, image_id: str, version: str) -> str:
    path = study.image_path(image_id, version)
    if path is None or not path.is_file():  # a missing file is named in the report, not a crash
        return f"<span class='note'>[{version} image file missing]</span>"
    return (f'<img alt="{version}" style="image-rendering:pixelated;width:64px;height:64px;margin:1px" '
            f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">')


def study_section_html(study: Study, score: StudyScore, *, n_examples: int = 8, figure: Any = None) -> str:
    """The study's report section: counts, Table 4, per-labeller accuracy, Figure 8, example grids."""
    t, c = score.table4, score.counts
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(s.name)} ({s.kind})</td>"
        + "".join(f"<td>{_pct(s.acc(v, k))} <span class='note'>n={s.accuracy[(v, k)].n}</span></td>"
                  for v in ("clean", "adv") for k in CONFIDENCE_SLICES)
        + "</tr>"
        for s in score.labellers
    )  # fmt: skip
    kappa = "; ".join(f"{v} {describe(a)}" for v, groups in score.agreement.items() for a in groups.values())
    r = score.rule
    parts = [
        f"<section id='human-study'><h2>Human study: {esc(study.name)}</h2>",
        f"<p class='note'>{len(study.images)} misclassified adversarial images of {study.n_evaluated} evaluated "
        f"({study.n_model_correct} robust-correct, {study.n_clean_wrong} wrong before the attack and not labelled); "
        f"validity rule: at least {r.min_correct} labellers correct or {r.min_high_confidence_humans} human(s) "
        f"correct with high confidence; deceptive: more than {r.deceptive_majority:.0%} of humans chose the "
        "model's class.</p>",
        f"<p>valid <b>{c['valid']}</b>, invalid <b>{c['invalid']}</b> (deceptive {c['deceptive']}, ambiguous "
        f"{c['ambiguous']}), not yet labelled {c['unscored']}.</p>",
        f"<p class='note'>Agreement (Fleiss' kappa for varying raters and Krippendorff's alpha, nominal, over images "
        f"with at least two answers; 95 % bootstrap intervals over images): {esc(kappa)}.</p>",
        "<table class='data'><tr><th>configuration</th><th>all data</th><th>valid data</th></tr>"
        f"<tr><td>model</td><td>{_pct(t.model_all)}</td><td>{_pct(t.model_valid)}</td></tr>"
        f"<tr><td>model + average labeller ({esc(', '.join(t.average_over)) or 'none'})</td>"
        f"<td>{_pct(t.with_average_all)}</td><td>{_pct(t.with_average_valid)}</td></tr>"
        f"<tr><td class='note'>... unweighted mean of per-labeller accuracies</td>"
        f"<td>{_pct(t.with_average_unweighted_all)}</td><td>{_pct(t.with_average_unweighted_valid)}</td></tr></table>",
        "<table class='data'><tr><th>labeller</th>"
        + "".join(f"<th>{v} {k}</th>" for v in ("clean", "adv") for k in CONFIDENCE_SLICES) + f"</tr>{rows}</table>",
    ]  # fmt: skip
    if figure is not None:
        parts.append(f"<img alt='Figure 8' style='max-width:100%' src='data:image/png;base64,{_png_b64(figure)}'>")
    for status in ("valid", "deceptive", "ambiguous"):
        chosen = [v for v in score.images if v.status == status][:n_examples]
        cells = "".join(
            f"<div class='example' style='border:1px solid #ddd;padding:4px;font-size:.75em'>{_img(study, v.id, 'adv')}{_img(study, v.id, 'clean')}<br>"
            f"{esc(v.id)}: true {esc(study.classes[v.label])}, model {esc(study.classes[v.model_pred])}, "
            f"{v.n_correct}/{v.n_answers} right</div>"
            for v in chosen
        )  # fmt: skip
        parts.append(f"<h3>{status} (adversarial | clean)</h3><div class='examples' style='display:flex;flex-wrap:wrap;gap:10px'>{cells or '<i>none</i>'}</div>")
    parts.append("</section>")
    return "\n".join(parts)


def load_scored(study_dir: str | Path, db_url: str | None = None) -> tuple[Study, StudyScore]:
    """A study directory loaded and scored with the paper's rule.

    Raises:
        FileNotFoundError: not a study directory (the message says how to create one).
    """
    from robustperf.human.db import StudyDB
    from robustperf.human.scoring import score_study
    from robustperf.human.study import load_study

    if not (Path(study_dir) / "manifest.json").is_file():
        raise FileNotFoundError(f"{study_dir} is not a human study directory (no manifest.json): create one with "
                                "`robustperf human create RUN_DIR STUDY_DIR`")
    study = load_study(study_dir)
    db = StudyDB(study, db_url)
    try:
        return study, score_study(study, db.all_answers())
    finally:
        db.close()


def study_section_from_dir(study_dir: str | Path, db_url: str | None = None) -> str:
    """Load, score (the paper's rule) and render a study directory: the section the run report embeds."""
    return study_section_from_score(*load_scored(study_dir, db_url))


def study_section_from_score(study: Study, score: StudyScore) -> str:
    """The section of a scored study, with its Figure 8."""
    import matplotlib.pyplot as plt

    fig = figure8(score)
    try:
        return study_section_html(study, score, figure=fig)
    finally:
        plt.close(fig)


@dataclass(frozen=True)
class HumanLevel:
    """The human-level robust accuracy of a labelling study (papers/001 Table 4 / Fig. 1).

    ``value`` is "model + average human on all data": the points the model gets right under attack plus
    the average human's correct answers on the images it got wrong, over every evaluated point. It is
    the line papers/001 Fig. 1 draws (0.9046 there).
    """

    value: float
    study: str
    n_humans: int
    n_images: int
    n_evaluated: int

    @property
    def label(self) -> str:
        return (f"human level {self.value:.3f} (study {self.study}: model + average of {self.n_humans} "
                f"human{'s' if self.n_humans != 1 else ''}, {self.n_images} images)")


def human_level(study_dir: str | Path, db_url: str | None = None) -> HumanLevel:
    """Score a study directory with the paper's rule and return its human-level accuracy.

    Raises:
        FileNotFoundError: not a study directory.
        ValueError: no human has answered yet, so there is no human level to draw.
    """
    return human_level_of(*load_scored(study_dir, db_url))


def human_level_of(study: Study, score: StudyScore) -> HumanLevel:
    """The human-level accuracy of a scored study (see `human_level`)."""
    value = score.table4.with_average_all
    if value is None:
        raise ValueError(f"human study {study.name} ({study.root}) has no human answers yet, so it has no human level: "
                         f"invite labellers (`robustperf human invite`) and let them label, or leave the line out")
    return HumanLevel(value=float(value), study=study.name, n_humans=len(score.table4.average_over),
                      n_images=len(study.images), n_evaluated=study.n_evaluated)


def render_study_report(study: Study, score: StudyScore) -> dict[str, bytes]:
    """``report.html`` and ``figure8.png`` as bytes, file name -> content (nothing written)."""
    import matplotlib.pyplot as plt

    fig = figure8(score)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    section = study_section_html(study, score, figure=fig)
    plt.close(fig)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(study.name)}</title>"
            f"<style>{CSS}</style></head><body>{section}</body></html>")
    return {"report.html": page.encode(), "figure8.png": buf.getvalue()}


def write_study_report(study: Study, score: StudyScore, out: str | Path | None = None) -> Path:
    """Write ``STUDY/report.html`` and ``STUDY/figure8.png`` (each atomically, after both are rendered)."""
    out = Path(out) if out is not None else study.root / "report.html"
    files = render_study_report(study, score)
    write_bytes_atomic(out.with_name("figure8.png"), files["figure8.png"])
    write_bytes_atomic(out, files["report.html"])
    return out


__all__ = ["HumanLevel", "figure8", "human_level", "human_level_of", "load_scored", "study_section_from_dir",
           "study_section_from_score", "study_section_html", "render_study_report",
           "write_study_report"]
