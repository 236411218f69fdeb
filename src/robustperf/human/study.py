"""Study creation: turn an evaluation's adversarial export into a labelling study directory.

papers/001 Section 4 / Appendix G.1: the images the attack made the model misclassify are shown to
labellers in batches of 100, adversarial versions first, then their clean versions. A study directory
holds everything the web app and the scoring need and nothing else:

```
STUDY/manifest.json          classes, source evaluation, counts for Table 4, images, batches
STUDY/images/adv/<id>.png    the adversarial image at its native resolution (8-bit)
STUDY/images/clean/<id>.png  its clean version
STUDY/answers.sqlite         created by `invite` / `serve` (see `db.py`)
```

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robustperf.store.io import write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
VERSIONS = ("adv", "clean")
CONFIDENCES = ("low", "high")
IMAGE_ID = re.compile(r"^img[0-9]{5,9}$")  # the only shape an image id can have (no path characters)

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
        id: stable id ("img" + the point's index in the evaluated subset).
        index: index in the evaluated subset (the evaluation's ``index`` array).
        label: true class index.
        model_pred: the model's prediction on the adversarial image.
        batch: batch number (0-based).
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
        if version not in VERSIONS or not IMAGE_ID.match(image_id) or image_id not in self._by_id():
            return None
        return self.root / "images" / version / f"{image_id}.png"

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
    order = np.arange(n) if shuffle_seed is None else np.random.default_rng(shuffle_seed).permutation(n)
    images = []
    for pos, k in enumerate(order):
        idx = int(data["index"][k])
        images.append(StudyImage(id=f"img{idx:05d}", index=idx, label=int(labels[k]), model_pred=int(preds[k]),
                                 batch=pos // batch_size))
    width = int(data["x_adv"].shape[-1])
    scale = display_scale or max(1, -(-256 // width))
    n_evaluated = int(data["robust_flags"].shape[0])
    n_model_correct = int(data["robust_flags"].sum())
    clean_flags = data.get("clean_flags")
    n_clean_wrong = int(n_evaluated - clean_flags.sum()) if clean_flags is not None else n_evaluated - n_model_correct - n
    for version, key in (("adv", "x_adv"), ("clean", "x_clean")):
        (out / "images" / version).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            write_bytes_atomic(out / "images" / version / f"img{int(data['index'][k]):05d}.png", to_png(data[key][k]))
    manifest = {
        "format": 1,
        "name": name or out.name,
        "classes": list(classes),
        "n_evaluated": n_evaluated,
        "n_model_correct": n_model_correct,
        "n_clean_wrong": n_clean_wrong,
        "batch_size": batch_size,
        "display_scale": scale,
        "source": {**(source or {}), "export": str(export.resolve())},
        "images": [asdict(im) for im in images],
    }
    write_json_atomic(out / MANIFEST, manifest)
    log.info("study %s: %d images in %d batches", out, n, -(-n // batch_size))
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
        return Study(root=root, name=m["name"], classes=tuple(m["classes"]), n_evaluated=int(m["n_evaluated"]),
                     n_model_correct=int(m["n_model_correct"]), n_clean_wrong=int(m["n_clean_wrong"]),
                     batch_size=int(m["batch_size"]), display_scale=int(m["display_scale"]), images=images,
                     source=dict(m.get("source", {})))
    except (ValueError, KeyError, TypeError) as exc:
        raise StudyError(f"{path} is damaged ({exc}); recreate the study with `robustperf human create`") from None


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
