"""The report's hook for the papers' figures and the zoo: what `build_report` adds where the data exist.

- papers/001 Fig. 1: robust accuracy vs FLOPs with the study's L(N, D) law and the human-level line;
- papers/001 Fig. 7: compute overhead vs model size at the study's largest budget (closed-form laws);
- papers/002 Fig. 1b/1c: the recipe -> robust accuracy predictor on the study's runs (>= 20 runs);
- papers/004 XIV.C: the study's runs against each zoo table among the report's overlays.

A figure whose data are missing is not drawn; the reason goes to the report's notes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from robustperf.report import papers
from robustperf.report.zoo import zoo_figures


def extra_figures(analysis: Any, overlays: Sequence[str | Path] = ()) -> dict[str, tuple[str, Figure]]:
    """name -> (caption, Figure) for the papers' figures these runs can show and the study-vs-zoo figures."""
    frame = analysis.frame
    done = frame[frame["status"] == "finished"]
    surface = analysis.surface if analysis.surface is not None and analysis.surface.ok else None
    law = surface.to_law() if surface is not None else None
    l2a = analysis.loss_to_accuracy
    to_acc = l2a.to_law() if l2a is not None and l2a.ok else None
    out: dict[str, tuple[str, Figure]] = {}

    def add(name: str, caption: str, draw: Callable[[], Figure]) -> None:
        try:
            out[name] = (caption, draw())
        except (papers.NoFigure, ValueError) as why:
            analysis.notes.append(f"figure {name} not drawn: {why}")

    # papers/001's human level is measured on CIFAR-10: drawn only on a CIFAR-10 study (issue 27)
    datasets = set(done["dataset"].dropna().astype(str)) if "dataset" in done else set()
    same_data = datasets == {papers.HUMAN_LEVEL_DATASET}
    human = (f"the human-level line of papers/001 Table 4 (measured on {papers.HUMAN_LEVEL_DATASET})" if same_data
             else f"no human-level line (papers/001's is measured on {papers.HUMAN_LEVEL_DATASET}; this study is on "
                  f"{', '.join(sorted(datasets)) or 'unknown data'})")
    add("accuracy_vs_flops_human", "Robust accuracy vs training FLOPs with the study's law (compute-optimal, "
        f"mapped to accuracy; dashed beyond the largest run: extrapolation) and {human} (papers/001 Fig. 1).",
        lambda: papers.accuracy_vs_flops_by_quality(done, law, k=analysis.k, loss_to_accuracy=to_acc,
                                                    human_level=papers.HUMAN_LEVEL if same_data else None))
    # Eq. 6 needs the law's (A, B', E') terms: Chinchilla's form (chinchilla, approach2 or a plug-in law that has them)
    if law is not None and callable(getattr(law, "terms", None)) and analysis.k:
        budget = float(done["flops"].max())
        add("overhead_vs_model_size", f"Compute overhead of other model sizes to reach the compute-optimal loss at "
            f"this study's largest budget, {budget:.3g} FLOPs (papers/001 Fig. 7, Eq. 6).",
            lambda: papers.overhead_vs_model_size(law, budget, k=analysis.k))
    features = [c for c in PREDICTOR_FEATURES if c in done and done[c].nunique(dropna=True) > 1]
    add("predictor", f"Gradient-boosting predictor of robust accuracy from {', '.join(features) or 'no varying column'} "
        "on a 70:30 split of the finished runs: held-out parity and feature importances (papers/002 Fig. 1b/1c).",
        lambda: _predictor(done, features))
    out.update(zoo_figures(frame, overlays))
    return out


PREDICTOR_FEATURES = ("n_params", "samples_seen", "attack_steps", "method", "model", "dataset", "n_train")
MIN_PREDICTOR_RUNS = 20  # a 30 % test split of fewer runs says little about held-out accuracy


def _predictor(done: Any, features: list[str]) -> Figure:
    from robustperf.scaling import fit_robustness_predictor

    runs = done.dropna(subset=["robust_acc"])
    if len(runs) < MIN_PREDICTOR_RUNS or not features:
        raise papers.NoFigure(f"the predictor needs >= {MIN_PREDICTOR_RUNS} finished runs with a robust accuracy "
                              f"and a recipe column that varies; have {len(runs)} runs, features {features or 'none'}")
    return papers.predictor_figure(fit_robustness_predictor(runs, features, "robust_acc"), target="robust accuracy")
