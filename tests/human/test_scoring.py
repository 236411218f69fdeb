"""Scoring on hand-built answer tables whose counts and Table-4 numbers are worked out by hand below."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustperf.human.scoring import ValidityRule, fleiss_kappa, score_study
from robustperf.human.study import Answer, Study, StudyImage

# Three classes 0, 1, 2. N = 20 evaluated points, C = 12 robust-correct, 6 fooled images in the study
# (2 more were wrong before the attack). image -> (true label, model's adversarial prediction)
IMAGES = {"img00000": (0, 1), "img00001": (1, 2), "img00002": (2, 0), "img00003": (0, 2), "img00004": (1, 0),
          "img00005": (2, 1)}  # fmt: skip
# adversarial answers (label, confidence) of humans h1, h2, h3 and machine g
ADV = {
    "img00000": {"h1": (0, "low"), "h2": (1, "low"), "h3": (1, "high"), "g": (2, "high")},
    "img00001": {"h1": (1, "high"), "h2": (0, "low"), "h3": (2, "low"), "g": (0, "low")},
    "img00002": {"h1": (2, "low"), "h2": (0, "low"), "h3": (1, "low"), "g": (2, "low")},
    "img00003": {"h1": (1, "low"), "h2": (1, "low"), "h3": (2, "low"), "g": (2, "high")},
    "img00004": {"h1": (0, "low"), "h2": (2, "high"), "h3": (2, "low"), "g": (1, "high")},
    "img00005": {"h1": (2, "high"), "h2": (2, "high"), "h3": (2, "high"), "g": (2, "low")},
}
# Verdicts by the paper's rule (>= 2 correct, or >= 1 human correct with high confidence):
#   img0: 1 correct (h1, low)                    -> invalid; humans on model's class 1: h2, h3 = 2/3 -> deceptive
#   img1: 1 correct but h1 high                  -> valid
#   img2: 2 correct (h1, g)                      -> valid
#   img3: 0 correct; humans on model's 2: h3 1/3 -> ambiguous
#   img4: 1 correct (g, a machine: its high confidence does not count); humans on 0: h1 1/3 -> ambiguous
#   img5: 4 correct                              -> valid
# Adversarial accuracy: h1 4/6 (low 2/4, high 2/2), h2 1/6, h3 1/6, g 3/6 (g: img2, img4, img5).
# On the valid images {1, 2, 5}: h1 3/3, h2 1/3, h3 1/3, g 2/3.


def make_study(tmp_path: Path, n_evaluated: int = 20, n_correct: int = 12, images: dict | None = None) -> Study:
    images = IMAGES if images is None else images
    items = tuple(StudyImage(id=i, index=k, label=lab, model_pred=pred, batch=0)
                  for k, (i, (lab, pred)) in enumerate(images.items()))  # fmt: skip
    return Study(root=tmp_path, name="hand", classes=("a", "b", "c"), n_evaluated=n_evaluated,
                 n_model_correct=n_correct, n_clean_wrong=n_evaluated - n_correct - len(items), batch_size=100,
                 display_scale=1, images=items)  # fmt: skip


def answers() -> list[Answer]:
    out = [Answer(who, "machine" if who == "g" else "human", image, "adv", label, conf, "t")
           for image, given in ADV.items() for who, (label, conf) in given.items()]  # fmt: skip
    # clean answers: h1 right with high confidence on img0, wrong with low on img1; they never decide validity
    out += [Answer("h1", "human", "img00000", "clean", 0, "high", "t"), Answer("h1", "human", "img00001", "clean", 0, "low", "t")]
    return out


def test_validity_deceptive_ambiguous_counts(tmp_path: Path) -> None:
    score = score_study(make_study(tmp_path), answers())
    status = {v.id: v.status for v in score.images}
    assert status == {"img00000": "deceptive", "img00001": "valid", "img00002": "valid", "img00003": "ambiguous",
                      "img00004": "ambiguous", "img00005": "valid"}  # fmt: skip
    assert score.counts == {"valid": 3, "deceptive": 1, "ambiguous": 2, "unscored": 0, "invalid": 3, "images": 6}


def test_per_labeller_accuracy_by_confidence(tmp_path: Path) -> None:
    score = score_study(make_study(tmp_path), answers())
    by = {s.name: s for s in score.labellers}
    assert by["h1"].acc("adv") == pytest.approx(4 / 6)
    assert (by["h1"].accuracy[("adv", "low")].n_correct, by["h1"].accuracy[("adv", "low")].n) == (2, 4)
    assert by["h1"].acc("adv", "high") == 1.0
    assert by["h2"].acc("adv") == pytest.approx(1 / 6) and by["h3"].acc("adv") == pytest.approx(1 / 6)
    assert by["g"].acc("adv") == pytest.approx(3 / 6) and by["g"].kind == "machine"
    assert (by["h1"].acc("clean"), by["h1"].acc("clean", "high"), by["h1"].acc("clean", "low")) == (0.5, 1.0, 0.0)
    assert by["h2"].acc("clean") is None  # h2 gave no clean answers


def test_table4_by_hand(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    t = score_study(study, answers()).table4  # the average labeller averages the humans by default
    assert t.model_all == pytest.approx(12 / 20)
    assert t.model_valid == pytest.approx(12 / 17)  # 3 invalid images leave the benchmark
    # humans' mean accuracy (4/6 + 1/6 + 1/6) / 3 = 1/3 of 6 images = 2 more correct
    assert t.with_average_all == pytest.approx((12 + 2) / 20)
    # on the 3 valid images: mean (3/3 + 1/3 + 1/3) / 3 = 5/9 of 3 = 5/3 more correct
    assert t.with_average_valid == pytest.approx((12 + 5 / 3) / 17)
    assert t.average_over == ("h1", "h2", "h3")
    both = score_study(study, answers(), average_kinds=("human", "machine")).table4
    assert both.with_average_all == pytest.approx((12 + 9 / 24 * 6) / 20)  # (4+1+1+3)/6/4 = 3/8 of 6
    assert both.with_average_valid == pytest.approx((12 + 7 / 12 * 3) / 17)  # (3+1+1+2)/3/4 = 7/12 of 3


def test_rule_thresholds_are_parameters(tmp_path: Path) -> None:
    score = score_study(make_study(tmp_path), answers(), ValidityRule(min_correct=1))
    # one correct labeller now suffices: img0 (h1) and img4 (g) become valid; img3 stays ambiguous
    assert score.counts["valid"] == 5 and score.counts["ambiguous"] == 1 and score.counts["deceptive"] == 0
    strict = score_study(make_study(tmp_path), answers(), ValidityRule(min_correct=3, min_high_confidence_humans=2))
    # only img5 has >= 3 correct (and >= 2 high-confidence humans); img1 (one high human) and img2 (2 correct) drop
    assert strict.counts["valid"] == 1
    with pytest.raises(ValueError, match=">= 1"):
        ValidityRule(min_correct=0)


def test_fleiss_kappa_by_hand(tmp_path: Path) -> None:
    # 3 raters, 2 categories: P_i = 1, 1, 1/3, 1/3 -> P_bar = 2/3; p = (1/2, 1/2) -> P_e = 1/2; kappa = 1/3
    assert fleiss_kappa([[3, 0], [0, 3], [2, 1], [1, 2]]) == pytest.approx(1 / 3)
    assert fleiss_kappa([[2, 0], [0, 2]]) == pytest.approx(1.0)
    assert fleiss_kappa([[2, 0], [2, 0]]) is None  # every rating in one category: chance agreement is 1
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 0], [1, 0]])
    # the study's adversarial answers: rows [1,2,1] [2,1,1] [1,1,2] [0,2,2] [1,1,2] [0,0,4];
    # P_bar = (2+2+2+4+2+12)/12/6 = 1/3, P_e = (5^2+7^2+12^2)/24^2 = 218/576 -> kappa = -26/358
    score = score_study(make_study(tmp_path), answers(), n_boot=0)
    every = score.agreement["adv"]["all"]
    assert every.kappa == pytest.approx(-26 / 358) and (every.n_items, every.n_raters, every.n_ratings) == (6, 4, 24)
    # humans alone (the headline kappa): rows [1,2,0] [1,1,1] [1,1,1] [0,2,1] [1,0,2] [0,0,3];
    # P_bar = (2+0+0+2+2+6)/6/6 = 1/3, P_e = (4^2+6^2+8^2)/18^2 = 116/324 -> kappa = -8/208 = -1/26
    assert score.kappa["adv"] == pytest.approx(-1 / 26) == score.agreement["adv"]["humans"].kappa
    assert score.agreement["adv"]["machines"].n_items == 0  # one machine: no image has two machine answers
    assert score.kappa["clean"] is None and score.agreement["clean"]["humans"].n_items == 0  # one clean rater


def test_unlabelled_images_are_unscored_and_stay_in_the_benchmark(tmp_path: Path) -> None:
    images = {**IMAGES, "img00006": (0, 1)}
    score = score_study(make_study(tmp_path, images=images), answers())
    assert score.counts["unscored"] == 1 and score.counts["invalid"] == 3
    assert score.table4.model_valid == pytest.approx(12 / 17)


def test_paper_table4_from_its_counts(tmp_path: Path) -> None:
    """papers/001 Table 4 from its own counts: 10000 points, 7371 robust-correct, 2629 fooled, 727 invalid,
    the average human right on 1675 of 2629 (1574 of the 1902 valid): 73.71 / 79.49 / 90.46 / 96.46 %."""
    images = {f"img{k:05d}": (0, 1) for k in range(2629)}
    study = make_study(tmp_path, n_evaluated=10000, n_correct=7371, images=images)
    ids = list(images)
    given = []
    for k, i in enumerate(ids):
        valid = k < 1902
        for m in ("m1", "m2"):  # two machines decide validity: both right on the first 1902 images only
            given.append(Answer(m, "machine", i, "adv", 0 if valid else 2, "high", "t"))
        right = k < 1574 or 1902 <= k < 1902 + 101  # the human: 1574 valid + 101 invalid right, all low confidence
        deceived = 1902 + 101 <= k < 1902 + 101 + 284  # and the model's class on 284 invalid ones
        given.append(Answer("h", "human", i, "adv", 0 if right else (1 if deceived else 2), "low", "t"))
    score = score_study(study, given)
    assert score.counts["valid"] == 1902 and score.counts["invalid"] == 727 and score.counts["deceptive"] == 284
    t = score.table4
    assert [round(100 * v, 2) for v in (t.model_all, t.model_valid, t.with_average_all, t.with_average_valid)] == [
        73.71, 79.49, 90.46, 96.46]  # fmt: skip
    assert round(100 * score.counts["deceptive"] / score.counts["invalid"]) == 39
