"""Scoring a labelling study: per-labeller accuracy, agreement, validity, and Table 4 of papers/001.

Definitions (papers/001 Section 4.2), with the thresholds as parameters of `ValidityRule`:

- an adversarial image is **valid** when at least ``min_correct`` labellers (humans and machines) give
  its true class, or at least ``min_high_confidence_humans`` humans give it with high confidence
  (paper: 2 of 4 users, or 1 human with high confidence);
- an invalid image is **deceptive** when more than ``deceptive_majority`` of the humans who labelled
  it chose the model's (wrong) prediction, else **ambiguous** (paper: 39 % of invalid images deceptive);
- **Table 4**: with N evaluated points of which the model gets C right under attack and I study
  images are invalid, robust accuracy is C / N on all data and C / (N - I) on valid data. The paper's
  "+ average labeller" (Table 4 caption) "adds the 7371 images correctly classified by the SOTA NN to
  the average number of images correctly classified by humans when they are given the 2629 images
  misclassified by our SOTA NN, then divides by 10000": every labeller saw every image there, so the
  average count is acc * n_study for any averaging. On incomplete designs (``--batches``, latecomers)
  the averages differ; we report the answer-weighted one, (C + acc_pooled * n_study) / N with
  acc_pooled = sum of correct answers / sum of answers (a labeller with 3 answers weighs 3 answers, not
  a whole labeller), and beside it the unweighted mean of per-labeller accuracies (``*_unweighted``).
  On valid data the same with the valid images and N - I. Points the model already got wrong before
  the attack are not in the study and count as errors for both.
- **Agreement** (`agreement.py`): Fleiss' kappa (varying raters per item) and Krippendorff's alpha
  (nominal) over every image with >= 2 answers, for humans, machines and all labellers, per version.

Only adversarial answers decide validity; clean answers give each labeller's clean accuracy (Figure 8).
Images nobody has labelled yet are "unscored": neither valid nor invalid, and not removed in Table 4.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from robustperf.human.agreement import N_BOOTSTRAP, Agreement, agreement
from robustperf.human.study import Answer, Study

CONFIDENCE_SLICES = ("any", "low", "high")
GROUPS = {"humans": ("human",), "machines": ("machine",), "all": ("human", "machine")}


@dataclass(frozen=True)
class ValidityRule:
    """When an adversarial image still shows its labelled class (papers/001 Section 4.2)."""

    min_correct: int = 2
    min_high_confidence_humans: int = 1
    deceptive_majority: float = 0.5

    def __post_init__(self) -> None:
        if self.min_correct < 1 or self.min_high_confidence_humans < 1:
            raise ValueError("validity thresholds must be >= 1 (a rule that needs 0 correct labellers calls "
                             "every image valid)")
        if not 0 <= self.deceptive_majority < 1:
            raise ValueError(f"deceptive_majority={self.deceptive_majority}: use a fraction in [0, 1)")


@dataclass(frozen=True)
class Accuracy:
    n: int
    n_correct: int

    @property
    def value(self) -> float | None:
        return self.n_correct / self.n if self.n else None


@dataclass(frozen=True)
class LabellerScore:
    """One labeller's accuracy, keyed by (version, confidence slice) e.g. ("adv", "high")."""

    name: str
    kind: str
    accuracy: dict[tuple[str, str], Accuracy]

    def acc(self, version: str, confidence: str = "any") -> float | None:
        return self.accuracy[(version, confidence)].value


@dataclass(frozen=True)
class ImageVerdict:
    id: str
    label: int
    model_pred: int
    n_answers: int
    n_correct: int
    n_high_confidence_humans_correct: int
    n_humans: int
    n_humans_model_pred: int
    status: str  # "valid", "deceptive", "ambiguous" or "unscored"

    @property
    def valid(self) -> bool | None:
        return None if self.status == "unscored" else self.status == "valid"


@dataclass(frozen=True)
class Table4:
    """papers/001 Table 4, as fractions: model alone and model + average labeller, on all / valid data."""

    model_all: float
    model_valid: float
    with_average_all: float | None  # answer-weighted (pooled) accuracy of the averaged labellers
    with_average_valid: float | None
    average_over: tuple[str, ...]  # names of the labellers averaged
    with_average_unweighted_all: float | None = None  # unweighted mean of per-labeller accuracies
    with_average_unweighted_valid: float | None = None


@dataclass(frozen=True)
class StudyScore:
    labellers: tuple[LabellerScore, ...]
    images: tuple[ImageVerdict, ...]
    agreement: dict[str, dict[str, Agreement]]  # version -> group ("humans", "machines", "all") -> agreement
    table4: Table4
    rule: ValidityRule
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def kappa(self) -> dict[str, float | None]:
        """Version -> the humans' Fleiss' kappa (the headline number; `agreement` has the rest)."""
        return {v: groups["humans"].kappa for v, groups in self.agreement.items()}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of every number (the `score` command writes it as score.json)."""
        t = self.table4
        return {
            "rule": vars(self.rule),
            "counts": self.counts,
            "kappa": self.kappa,
            "agreement": {v: {g: asdict(a) for g, a in groups.items()} for v, groups in self.agreement.items()},
            "table4": asdict(t),
            "labellers": [{"name": s.name, "kind": s.kind,
                           **{f"{v}_{c}": {"n": a.n, "n_correct": a.n_correct, "acc": a.value}
                              for (v, c), a in s.accuracy.items()}} for s in self.labellers],
            "images": [vars(v) for v in self.images],
        }  # fmt: skip


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa of an items x categories count table with the same number of raters per item.

    Returns None when it is undefined (fewer than 2 raters or items, or chance agreement of 1).
    """
    rows = [list(r) for r in table]
    if len(rows) < 1:
        return None
    n = sum(rows[0])
    if n < 2 or any(sum(r) != n for r in rows):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    n_items = len(rows)
    p_bar = sum((sum(c * c for c in r) - n) / (n * (n - 1)) for r in rows) / n_items
    n_cat = len(rows[0])
    p_e = sum((sum(r[j] for r in rows) / (n_items * n)) ** 2 for j in range(n_cat))
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1 - p_e)


def _labeller_scores(study: Study, answers: Iterable[Answer]) -> tuple[LabellerScore, ...]:
    counts: dict[str, dict[tuple[str, str], list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    kinds: dict[str, str] = {}
    for a in answers:
        image = study.image(a.image_id)
        if image is None:
            continue
        kinds[a.labeller] = a.kind
        for conf in ("any", a.confidence):
            cell = counts[a.labeller][(a.version, conf)]
            cell[0] += 1
            cell[1] += int(a.label == image.label)
    out = []
    for name in kinds:
        acc = {(v, c): Accuracy(*counts[name].get((v, c), [0, 0])) for v in ("adv", "clean") for c in CONFIDENCE_SLICES}
        out.append(LabellerScore(name=name, kind=kinds[name], accuracy=acc))
    return tuple(out)


def _verdicts(study: Study, adv: dict[str, list[Answer]], rule: ValidityRule) -> tuple[ImageVerdict, ...]:
    out = []
    for im in study.images:
        given = adv.get(im.id, [])
        humans = [a for a in given if a.kind == "human"]
        n_correct = sum(a.label == im.label for a in given)
        n_high = sum(a.label == im.label and a.confidence == "high" for a in humans)
        n_model = sum(a.label == im.model_pred for a in humans)
        if not given:
            status = "unscored"
        elif n_correct >= rule.min_correct or n_high >= rule.min_high_confidence_humans:
            status = "valid"
        elif humans and n_model > rule.deceptive_majority * len(humans):
            status = "deceptive"
        else:
            status = "ambiguous"
        out.append(ImageVerdict(im.id, im.label, im.model_pred, len(given), n_correct, n_high, len(humans), n_model,
                                status))
    return tuple(out)


def _agreement(study: Study, answers: Sequence[Answer], n_boot: int) -> dict[str, dict[str, Agreement]]:
    out: dict[str, dict[str, Agreement]] = {}
    for version in ("adv", "clean"):
        out[version] = {}
        for group, kinds in GROUPS.items():
            ratings: dict[str, dict[str, int]] = defaultdict(dict)
            for a in answers:
                if a.version == version and a.kind in kinds:
                    ratings[a.image_id][a.labeller] = a.label
            out[version][group] = agreement(group, ratings, len(study.classes), n_boot=n_boot)
    return out


def _with_average(study: Study, answers: Sequence[Answer], names: set[str], ids: set[str]
                  ) -> tuple[float | None, float | None]:
    """(pooled accuracy, unweighted mean of per-labeller accuracies) of `names` on the images `ids`."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for a in answers:
        if a.labeller in names and a.version == "adv" and a.image_id in ids:
            image = study.image(a.image_id)
            assert image is not None
            per[a.labeller][0] += int(a.label == image.label)
            per[a.labeller][1] += 1
    if not names:
        return None, None
    n_answers = sum(n for _, n in per.values())
    pooled = sum(k for k, _ in per.values()) / n_answers if n_answers else 0.0
    unweighted = sum(k / n for k, n in per.values() if n) / len(names)  # no answer there: 0 correct
    return pooled, unweighted


def _table4(study: Study, answers: Sequence[Answer], verdicts: Sequence[ImageVerdict], n_invalid: int,
            averaged: list[str]) -> Table4:
    n, c = study.n_evaluated, study.n_model_correct
    all_ids = {im.id for im in study.images}
    valid_ids = {v.id for v in verdicts if v.status == "valid"}
    names = set(averaged)
    pooled_all, mean_all = _with_average(study, answers, names, all_ids)
    pooled_valid, mean_valid = _with_average(study, answers, names, valid_ids)

    def with_all(acc: float | None) -> float | None:
        return None if acc is None else (c + acc * len(all_ids)) / n

    def with_valid(acc: float | None) -> float | None:
        return None if acc is None else (c + acc * len(valid_ids)) / (n - n_invalid)

    return Table4(model_all=c / n, model_valid=c / (n - n_invalid), with_average_all=with_all(pooled_all),
                  with_average_valid=with_valid(pooled_valid), average_over=tuple(averaged),
                  with_average_unweighted_all=with_all(mean_all),
                  with_average_unweighted_valid=with_valid(mean_valid))


def score_study(
    study: Study,
    answers: Sequence[Answer],
    rule: ValidityRule | None = None,
    *,
    average_kinds: Sequence[str] = ("human",),
    n_boot: int = N_BOOTSTRAP,
) -> StudyScore:
    """Score every answer of a study.

    Args:
        study: the study (labels, model predictions, Table 4 counts).
        answers: invited and machine labellers' answers (`StudyDB.all_answers`).
        rule: the validity thresholds (default: the paper's).
        average_kinds: which labellers "the average labeller" of Table 4 averages ("human", "machine").
        n_boot: bootstrap resamples for the agreement intervals (0: no intervals).
    """
    rule = rule or ValidityRule()
    answers = [a for a in answers if study.image(a.image_id) is not None]
    adv: dict[str, list[Answer]] = defaultdict(list)
    for a in answers:
        if a.version == "adv":
            adv[a.image_id].append(a)
    labeller_scores = _labeller_scores(study, answers)
    verdicts = _verdicts(study, adv, rule)
    status = [v.status for v in verdicts]
    counts = {s: status.count(s) for s in ("valid", "deceptive", "ambiguous", "unscored")}
    counts["invalid"] = counts["deceptive"] + counts["ambiguous"]
    counts["images"] = len(verdicts)

    averaged = [s.name for s in labeller_scores if s.kind in average_kinds and s.accuracy[("adv", "any")].n]
    table4 = _table4(study, answers, verdicts, counts["invalid"], averaged)
    return StudyScore(labellers=labeller_scores, images=verdicts, agreement=_agreement(study, answers, n_boot),
                      table4=table4, rule=rule, counts=counts)



def quiz_summary(study: Study, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The public quiz's answers (kept apart from the invited labellers'): visitors, answers, accuracy by confidence."""
    truth = {im.id: im for im in study.quiz}  # the quiz shows its own pool, never study images
    out: dict[str, Any] = {"visitors": len({r["session_id"] for r in rows}), "answers": len(rows)}
    for conf in CONFIDENCE_SLICES:
        chosen = [r for r in rows if conf == "any" or r["confidence"] == conf]
        right = sum(1 for r in chosen if (im := truth.get(r["image_id"])) is not None and im.label == r["label"])
        out[f"acc_{conf}"] = right / len(chosen) if chosen else None
        out[f"n_{conf}"] = len(chosen)
    return out


__all__ = ["GROUPS", "Accuracy", "ImageVerdict", "LabellerScore", "StudyScore", "Table4", "ValidityRule",
           "fleiss_kappa", "quiz_summary", "score_study"]
