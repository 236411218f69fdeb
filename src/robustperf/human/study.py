"""Study creation: turn an evaluation's adversarial export into a labelling study directory.

papers/001 Section 4 / Appendix G.1: the images the attack made the model misclassify are shown to
labellers in batches of 100, adversarial versions first, then their clean versions. A study directory
holds everything the web app and the scoring need and nothing else:

```
STUDY/manifest.json               classes, source evaluation, counts for Table 4, images, batches
STUDY/images/adv/<id>.png         the adversarial image at its native resolution (8-bit)
STUDY/images/clean/<id>.png       its clean version
STUDY/images/quiz/{adv,clean}/    the public quiz's own pool (`quiz_pool` images, never study images)
STUDY/answers.sqlite              created by `invite` / `serve` (see `db.py`), mode 0600
```

Image ids are opaque: ``x`` + 20 random hex digits, mapped to the evaluation index only in the manifest
(which the server never serves). An id built from the index (the old ``img<index>``) would give every
label away to anyone holding the public evaluation split. Studies written before this (format 1) keep
their ``img<index>`` ids and load with a warning.

The public quiz shows its visitors the true class and the model's prediction after each answer, so it
must never show a study image: ``quiz_pool`` fooled images are set aside for it at creation and leave
the evaluated set (``n_evaluated`` counts without them, so Table 4 stays consistent).

Images keep their pixels: the PNG is the native resolution, and the page upscales it for display with
nearest-neighbour CSS (``image-rendering: pixelated``), so labellers see exactly the stored pixels.
Storing 8 bits rounds the attack's float pixels by at most 1/510; the float arrays stay in the run's
evaluation export, which the manifest names.

The export (`evaluation.save_result`) holds the points the attack *fooled* (clean-correct, adversarially
wrong). Points the model already gets wrong on clean data are not in it; the manifest counts them
(``n_clean_wrong``) and the scoring keeps them in every denominator as errors nobody labelled.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robustperf.store.io import write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
VERSIONS = ("adv", "clean")
CONFIDENCES = ("low", "high")
IMAGE_ID = re.compile(r"(?:x[0-9a-f]{20}|img[0-9]{5,9})")  # fullmatch only: the shapes an id can have (no paths)
FORMAT = 2

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASET_CLASSES: dict[str, tuple[str, ...]] = {
    "cifar10": CIFAR10_CLASSES,
    "digits": tuple(str(i) for i in range(10)),
    "mnist": tuple(str(i) for i in range(10)),
}


class StudyError(ValueError):
    """A study cannot be created or read; the message names the fix."""


@dataclass(frozen=True)
class StudyImage:
    """One labelled item: an adversarial image and its clean version.

    Attributes:
        id: opaque random id ("x" + 20 hex digits; "img<index>" in format-1 studies).
        index: index in the evaluated subset (the evaluation's ``index`` array).
        label: true class index.
        model_pred: the model's prediction on the adversarial image.
        batch: batch number (0-based; -1 for a quiz-pool image).
    """

    id: str
    index: int
    label: int
    model_pred: int
    batch: int


@dataclass(frozen=True)
class Answer:
    """One stored answer: who (name, "human" or "machine"), which item, what they said."""

    labeller: str
    kind: str
    image_id: str
    version: str
    label: int
    confidence: str
    answered_at: str


@dataclass(frozen=True)
class Study:
    """A study directory's manifest, loaded.

    Attributes:
        root: the study directory.
        name: study name.
        classes: class names, by index.
        n_evaluated: points the evaluation attacked (N of Table 4).
        n_model_correct: points the model classifies correctly under the attack.
        n_clean_wrong: points the model got wrong before any attack (not in the study).
        batch_size: images per batch.
        display_scale: upscale factor for display (pixels are never resampled on disk).
        images: every study image, in batch order.
        source: where the export came from (run dir, evaluation, attack settings).
        quiz: the public quiz's image pool (disjoint from `images`).
    """

    root: Path
    name: str
    classes: tuple[str, ...]
    n_evaluated: int
    n_model_correct: int
    n_clean_wrong: int
    batch_size: int
    display_scale: int
    images: tuple[StudyImage, ...]
    source: dict[str, Any] = field(default_factory=dict)
    quiz: tuple[StudyImage, ...] = ()

    @property
    def n_batches(self) -> int:
        return 1 + max((im.batch for im in self.images), default=-1)

    def batch(self, number: int) -> tuple[StudyImage, ...]:
        return tuple(im for im in self.images if im.batch == number)

    def image(self, image_id: str) -> StudyImage | None:
        return self._by_id().get(image_id)

    def _by_id(self) -> dict[str, StudyImage]:
        cache = self.__dict__.get("_by_id_cache")
        if cache is None:
            cache = {im.id: im for im in self.images}
            object.__setattr__(self, "_by_id_cache", cache)
        return cache

    def image_path(self, image_id: str, version: str) -> Path | None:
        """The PNG of an image id, or None for anything that is not a study image (ids only, no paths)."""
        if version not in VERSIONS or not IMAGE_ID.fullmatch(image_id) or image_id not in self._by_id():
            return None
        return self.root / "images" / version / f"{image_id}.png"

    def quiz_image(self, image_id: str) -> StudyImage | None:
        return next((im for im in self.quiz if im.id == image_id), None)

    def quiz_image_path(self, image_id: str, version: str) -> Path | None:
        """The PNG of a quiz-pool image, or None for anything else (a study image included)."""
        if version not in VERSIONS or not IMAGE_ID.fullmatch(image_id) or self.quiz_image(image_id) is None:
            return None
        return self.root / "images" / "quiz" / version / f"{image_id}.png"

    def missing_images(self) -> list[str]:
        """Study and quiz image files that are not on disk ("adv/<id>", "quiz/clean/<id>", ...)."""
        out = [f"{v}/{im.id}" for im in self.images for v in VERSIONS if not (self.root / "images" / v /
                                                                              f"{im.id}.png").is_file()]
        out += [f"quiz/{v}/{im.id}" for im in self.quiz for v in VERSIONS
                if not (self.root / "images" / "quiz" / v / f"{im.id}.png").is_file()]
        return out

    @property
    def default_db_url(self) -> str:
        return f"sqlite:///{(self.root / 'answers.sqlite').resolve()}"


def to_png(pixels: np.ndarray) -> bytes:
    """A (C, H, W) float image in [0, 1] as 8-bit PNG bytes (grey for C=1, RGB for C=3)."""
    from PIL import Image

    if pixels.ndim != 3 or pixels.shape[0] not in (1, 3):
        raise StudyError(f"expected images shaped (C, H, W) with C in (1, 3), got {pixels.shape}")
    arr = np.clip(np.rint(np.asarray(pixels, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr[0], mode="L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), mode="RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def create_study(
    export: str | Path,
    out_dir: str | Path,
    classes: tuple[str, ...] | list[str],
    *,
    name: str | None = None,
    batch_size: int = 100,
    display_scale: int | None = None,
    shuffle_seed: int | None = 0,
    source: dict[str, Any] | None = None,
    quiz_pool: int = 0,
) -> Study:
    """Write a study directory from an evaluation export (`evaluation.save_result`'s npz).

    Args:
        export: the npz holding ``index``, ``x_adv``, ``x_clean``, ``y``, ``y_adv``, ``robust_flags``,
            ``clean_flags``.
        out_dir: the study directory to create (must not hold a study yet).
        classes: class names by index.
        name: study name (default: the directory name).
        batch_size: images per batch (the paper used 100).
        display_scale: display upscale (default: images shown at least 256 px wide).
        shuffle_seed: order images randomly within the study under this seed (None keeps the export order).
        source: provenance stored in the manifest.
        quiz_pool: fooled images set aside for the public quiz (not in the study, not in ``n_evaluated``).

    Returns:
        The loaded `Study`.
    """
    export, out = Path(export), Path(out_dir)
    if batch_size < 1:
        raise StudyError(f"batch_size={batch_size}: use a positive number of images per batch")
    if (out / MANIFEST).exists():
        raise StudyError(f"{out} already holds a study; pick a new directory or delete it")
    if not export.is_file():
        raise StudyError(f"{export} does not exist; run `robustperf evaluate RUN_DIR` first")
    with np.load(export) as npz:
        missing = [k for k in ("index", "x_adv", "x_clean", "y", "y_adv", "robust_flags") if k not in npz.files]
        if missing:
            raise StudyError(f"{export} lacks {missing}: it is not an adversarial export of `robustperf evaluate`")
        data = {k: npz[k] for k in npz.files}
    n = int(data["index"].shape[0])
    if n == 0:
        raise StudyError(f"{export} holds no misclassified adversarial images: nothing to label")
    labels, preds = data["y"].astype(int), data["y_adv"].astype(int)
    if int(max(labels.max(), preds.max())) >= len(classes):
        raise StudyError(f"the export has class {int(max(labels.max(), preds.max()))} but only {len(classes)} "
                         "class names were given; pass --classes with one name per class")
    if not 0 <= quiz_pool < n:
        raise StudyError(f"quiz_pool={quiz_pool}: use 0..{n - 1} (the export has {n} fooled images and the study "
                         "needs at least one)")
    order = np.arange(n) if shuffle_seed is None else np.random.default_rng(shuffle_seed).permutation(n)
    ids = {int(k): "x" + secrets.token_hex(10) for k in order}  # opaque: the index stays in the manifest only
    images: list[StudyImage] = []
    quiz: list[StudyImage] = []
    dirs: dict[int, Path] = {}
    for pos, k in enumerate(order):
        in_quiz = pos < quiz_pool
        item = StudyImage(id=ids[int(k)], index=int(data["index"][k]), label=int(labels[k]), model_pred=int(preds[k]),
                          batch=-1 if in_quiz else (pos - quiz_pool) // batch_size)
        (quiz if in_quiz else images).append(item)
        dirs[int(k)] = out / "images" / "quiz" if in_quiz else out / "images"
    width = int(data["x_adv"].shape[-1])
    scale = display_scale or max(1, -(-256 // width))
    n_evaluated = int(data["robust_flags"].shape[0]) - quiz_pool
    n_model_correct = int(data["robust_flags"].sum())
    clean_flags = data.get("clean_flags")
    n_clean_wrong = (int(data["robust_flags"].shape[0] - clean_flags.sum()) if clean_flags is not None
                     else n_evaluated - n_model_correct - (n - quiz_pool))
    for version, key in (("adv", "x_adv"), ("clean", "x_clean")):
        for k in range(n):
            (dirs[k] / version).mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(dirs[k] / version / f"{ids[k]}.png", to_png(data[key][k]))
    manifest = {
        "format": FORMAT,
        "name": name or out.name,
        "classes": list(classes),
        "n_evaluated": n_evaluated,
        "n_model_correct": n_model_correct,
        "n_clean_wrong": n_clean_wrong,
        "n_quiz_pool": quiz_pool,
        "batch_size": batch_size,
        "display_scale": scale,
        "source": {**(source or {}), "export": str(export.resolve())},
        "images": [asdict(im) for im in images],
        "quiz": [asdict(im) for im in quiz],
    }
    write_json_atomic(out / MANIFEST, manifest)
    log.info("study %s: %d images in %d batches, %d in the quiz pool", out, len(images), -(-len(images) // batch_size),
             len(quiz))
    return load_study(out)


def load_study(root: str | Path) -> Study:
    """Read a study directory written by `create_study`."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise StudyError(f"{root} is not a study directory (no {MANIFEST}); create one with `robustperf human create`")
    try:
        m = json.loads(path.read_text())
        images = tuple(StudyImage(**im) for im in m["images"])
        quiz = tuple(StudyImage(**im) for im in m.get("quiz", []))
        study = Study(root=root, name=m["name"], classes=tuple(m["classes"]), n_evaluated=int(m["n_evaluated"]),
                      n_model_correct=int(m["n_model_correct"]), n_clean_wrong=int(m["n_clean_wrong"]),
                      batch_size=int(m["batch_size"]), display_scale=int(m["display_scale"]), images=images,
                      source=dict(m.get("source", {})), quiz=quiz)
    except (ValueError, KeyError, TypeError) as exc:
        raise StudyError(f"{path} is damaged ({exc}); recreate the study with `robustperf human create`") from None
    bad = [im.id for im in images + quiz if not IMAGE_ID.fullmatch(im.id)]
    if bad:
        raise StudyError(f"{path} names images {bad[:3]} that are not image ids; recreate the study")
    if int(m.get("format", 1)) < FORMAT:
        log.warning("%s is a format-%s study: its image ids (img<index>) reveal the evaluation index and so the "
                    "labels; recreate it with `robustperf human create` before inviting labellers", root,
                    m.get("format", 1))
    return study


def find_export(run_dir: str | Path, evaluation: str | None = None) -> Path:
    """The npz export of a run's evaluation: the named one, or the only/newest AutoAttack one."""
    evals = Path(run_dir) / "evaluations"
    if evaluation is not None:
        path = evals / (evaluation if evaluation.endswith(".npz") else f"{evaluation}.npz")
        if not path.is_file():
            raise StudyError(f"{path} does not exist; list the run's evaluations with `ls {evals}`")
        return path
    found = sorted(evals.glob("*.npz"), key=lambda p: (p.name.startswith("autoattack"), p.stat().st_mtime))
    if not found:
        raise StudyError(f"{run_dir} has no evaluation export; run `robustperf evaluate {run_dir}` first")
    return found[-1]


def classes_for(dataset: str, n_classes: int | None = None) -> tuple[str, ...]:
    """Class names of a known data set, else "0".."n-1"."""
    if dataset in DATASET_CLASSES:
        return DATASET_CLASSES[dataset]
    if n_classes is None:
        raise StudyError(f"no class names known for data set {dataset!r}; pass --classes a,b,c")
    return tuple(str(i) for i in range(n_classes))


def create_study_from_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    evaluation: str | None = None,
    classes: tuple[str, ...] | list[str] | None = None,
    **kwargs: Any,
) -> Study:
    """`create_study` from a run directory: finds the export and the class names from the run's config."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise StudyError(f"{run_dir} is not a run directory (no config.json); see `robustperf runs list`")
    cfg = json.loads(cfg_path.read_text())
    export = find_export(run_dir, evaluation)
    if classes is None:
        with np.load(export) as npz:
            n_classes = 1 + int(max(npz["y"].max(initial=0), npz["y_adv"].max(initial=0))) if "y_adv" in npz.files else None
        classes = classes_for(str(cfg.get("data", {}).get("dataset", "")), n_classes)
    source = {"run_dir": str(run_dir.resolve()), "run_id": run_dir.name, "evaluation": export.stem,
              "dataset": cfg.get("data", {}).get("dataset")}
    return create_study(export, out_dir, classes, source=source, **kwargs)


__all__ = [
    "Answer",
    "CIFAR10_CLASSES",
    "CONFIDENCES",
    "IMAGE_ID",
    "VERSIONS",
    "Study",
    "StudyError",
    "StudyImage",
    "classes_for",
    "create_study",
    "create_study_from_run",
    "find_export",
    "load_study",
]
