"""Agreement on the designs studies actually run (--batches, a latecomer), against statsmodels and krippendorff."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robustperf.human.agreement import (
    bootstrap_intervals,
    count_table,
    fleiss_kappa_general,
    krippendorff_alpha_nominal,
)
from robustperf.human.scoring import score_study
from robustperf.human.study import Answer, Study, StudyImage

N_CLASSES = 10


def make_study(tmp_path: Path, n_images: int = 136, batch_size: int = 20) -> Study:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, N_CLASSES, n_images)
    items = tuple(StudyImage(id=f"x{k:020x}", index=k, label=int(labels[k]), model_pred=int((labels[k] + 1) % 10),
                             batch=k // batch_size) for k in range(n_images))  # fmt: skip
    return Study(root=tmp_path, name="design", classes=tuple(str(c) for c in range(N_CLASSES)), n_evaluated=1000,
                 n_model_correct=500, n_clean_wrong=1000 - 500 - n_images, batch_size=batch_size, display_scale=1,
                 images=items)  # fmt: skip


def noisy_answers(study: Study, who: str, ids: list[str], p_right: float, rng: np.random.Generator) -> list[Answer]:
    out = []
    for i in ids:
        im = study.image(i)
        assert im is not None
        label = im.label if rng.random() < p_right else int(rng.integers(0, N_CLASSES))
        out.append(Answer(who, "human", i, "adv", label, "low", "t"))
    return out


def batches_design(study: Study, n_labellers: int, per_labeller: int) -> list[Answer]:
    """`--batches`: labeller k gets batches k, k+1, ... (mod n_batches) - each image gets the same raters count."""
    rng = np.random.default_rng(2)
    out = []
    for k in range(n_labellers):
        ids = [im.id for b in range(per_labeller) for im in study.batch((k * per_labeller + b) % study.n_batches)]
        out += noisy_answers(study, f"h{k:02d}", ids, p_right=float(rng.uniform(0.3, 0.7)), rng=rng)
    return out


def as_reliability_data(study: Study, answers: list[Answer]) -> np.ndarray:
    """raters x items with NaN for "not rated": the krippendorff package's input."""
    raters = sorted({a.labeller for a in answers})
    col = {im.id: k for k, im in enumerate(study.images)}
    data = np.full((len(raters), len(study.images)), np.nan)
    for a in answers:
        data[raters.index(a.labeller), col[a.image_id]] = a.label
    return data


def table_of(answers: list[Answer]) -> np.ndarray:
    ratings: dict[str, dict[str, int]] = {}
    for a in answers:
        ratings.setdefault(a.image_id, {})[a.labeller] = a.label
    return count_table(ratings, N_CLASSES)[0]


def test_batches_design_matches_statsmodels_and_krippendorff(tmp_path: Path) -> None:
    statsmodels = pytest.importorskip("statsmodels.stats.inter_rater")
    krippendorff = pytest.importorskip("krippendorff")
    study = make_study(tmp_path)  # 136 images in 7 batches
    answers = batches_design(study, n_labellers=49, per_labeller=2)  # 98 batch assignments: 14 raters per image
    score = score_study(study, answers, n_boot=200)
    humans = score.agreement["adv"]["humans"]
    ref_kappa = statsmodels.fleiss_kappa(table_of(answers))
    ref_alpha = krippendorff.alpha(reliability_data=as_reliability_data(study, answers),
                                   level_of_measurement="nominal", value_domain=list(range(N_CLASSES)))
    print(f"\n--batches (136 images, 7 batches, 49 labellers x 2 batches, 14 per image): kappa ours {humans.kappa:.6f} "
          f"statsmodels {ref_kappa:.6f}; alpha ours {humans.alpha:.6f} krippendorff {ref_alpha:.6f}")
    assert humans.kappa == pytest.approx(ref_kappa, abs=1e-12)
    assert humans.alpha == pytest.approx(ref_alpha, abs=1e-12)
    assert (humans.n_items, humans.n_raters, humans.n_ratings) == (136, 49, len(answers))
    assert humans.kappa_ci is not None and humans.kappa_ci[0] < humans.kappa < humans.kappa_ci[1]
    # the old "items every labeller answered" rule had no item at all on this design
    assert not any(len({a.labeller for a in answers if a.image_id == im.id}) == 49 for im in study.images)


def test_uneven_batches_design_alpha_matches_krippendorff(tmp_path: Path) -> None:
    krippendorff = pytest.importorskip("krippendorff")
    study = make_study(tmp_path)
    answers = batches_design(study, n_labellers=50, per_labeller=2)  # 14 or 15 raters per image
    score = score_study(study, answers, n_boot=0)
    ref = krippendorff.alpha(reliability_data=as_reliability_data(study, answers), level_of_measurement="nominal",
                             value_domain=list(range(N_CLASSES)))
    humans = score.agreement["adv"]["humans"]
    statsmodels = pytest.importorskip("statsmodels.stats.inter_rater")
    try:
        ref_kappa = f"{statsmodels.fleiss_kappa(table_of(answers)):.6f}"
    except AssertionError:  # statsmodels >= 0.15 asserts the same number of raters on every item
        ref_kappa = "refuses: needs the same number of raters per image"
    print(f"\n--batches (136 images, 7 batches, 50 labellers x 2 batches, 14-15 per image): alpha ours {humans.alpha:.6f} "
          f"krippendorff {ref:.6f}; kappa ours {humans.kappa:.6f} (statsmodels {ref_kappa})")
    assert humans.alpha == pytest.approx(ref, abs=1e-12)
    assert {len({a.labeller for a in answers if a.image_id == im.id}) for im in study.images} == {14, 15}


def test_a_latecomer_barely_moves_agreement_or_table4(tmp_path: Path) -> None:
    krippendorff = pytest.importorskip("krippendorff")
    statsmodels = pytest.importorskip("statsmodels.stats.inter_rater")
    study = make_study(tmp_path)
    rng = np.random.default_rng(3)
    ids = [im.id for im in study.images]
    base = [a for k, p in enumerate((0.55, 0.45, 0.6)) for a in noisy_answers(study, f"h{k}", ids, p, rng)]
    late = noisy_answers(study, "late", ids[:3], 1.0, rng)  # 3 answers, all right
    before, after = score_study(study, base, n_boot=0), score_study(study, base + late, n_boot=0)
    k0, k1 = before.agreement["adv"]["humans"], after.agreement["adv"]["humans"]
    ref_k0 = statsmodels.fleiss_kappa(table_of(base))
    ref_a1 = krippendorff.alpha(reliability_data=as_reliability_data(study, base + late),
                                level_of_measurement="nominal", value_domain=list(range(N_CLASSES)))
    t0, t1 = before.table4, after.table4
    print(f"\nlatecomer (3 labellers x 136 + 1 x 3): kappa {k0.kappa:.4f} (statsmodels {ref_k0:.4f}) -> {k1.kappa:.4f}; "
          f"alpha -> {k1.alpha:.4f} (krippendorff {ref_a1:.4f}); + average labeller weighted "
          f"{100 * t0.with_average_all:.2f} -> {100 * t1.with_average_all:.2f} %, unweighted "
          f"{100 * t0.with_average_unweighted_all:.2f} -> {100 * t1.with_average_unweighted_all:.2f} %")
    assert k0.kappa == pytest.approx(ref_k0, abs=1e-12)
    assert k1.alpha == pytest.approx(ref_a1, abs=1e-12)
    assert abs(k1.kappa - k0.kappa) < 0.02 and k1.n_raters == 4 and k1.n_items == 136
    assert abs(t1.with_average_all - t0.with_average_all) < 0.001  # 3 answers of 411 move the pooled accuracy little
    # ...while the unweighted mean gives the 3-answer latecomer (100 %) a full labeller's weight
    assert t1.with_average_unweighted_all - t0.with_average_unweighted_all > 0.01
    assert t0.with_average_all == pytest.approx(t0.with_average_unweighted_all)  # complete design: the same number


def test_general_forms_by_hand() -> None:
    # two items rated by 2 and 3 raters: [2,0] and [1,2]; P_i = 1, (0+2)/6 = 1/3 -> P_bar = 2/3;
    # p = (3/5, 2/5) -> P_e = 13/25; kappa = (2/3 - 13/25) / (12/25) = 11/36
    assert fleiss_kappa_general([[2, 0], [1, 2], [1, 0]]) == pytest.approx(11 / 36)  # the 1-rating row is dropped
    # alpha: o_cc = 2*1/1 + (0 + 2*1)/2 = 3, n_c = (3, 2), n = 5: 1 - 4 * (5 - 3) / (25 - 13) = 1/3
    assert krippendorff_alpha_nominal([[2, 0], [1, 2]]) == pytest.approx(1 / 3)
    assert fleiss_kappa_general([[1, 0], [0, 1]]) is None and krippendorff_alpha_nominal([[3, 0], [2, 0]]) is None
    assert bootstrap_intervals(np.array([[2, 0]])) == (None, None)
