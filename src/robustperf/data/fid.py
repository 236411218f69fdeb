"""Frechet Inception Distance (FID) between an image set and a reference, with cached reference statistics.

FID = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2)) of the Gaussians fitted to two sets of
features (Heusel et al. 2017). The trace of the matrix square root is computed as the sum of the square
roots of the eigenvalues of S_1^(1/2) S_2 S_1^(1/2), a symmetric positive semi-definite matrix with the same
spectrum as S_1 S_2: two symmetric eigendecompositions in float64, no complex round-off to discard (the
usual `scipy.linalg.sqrtm` route is the independent check in the tests).

A statistic always carries the name of the extractor that produced it (`robustperf.data.features`); FIDs
from different extractors are different quantities and are never mixed. Statistics of named data sets
(``digits``, ``cifar10``, ...) are cached as ``<cache>/fid_stats/<dataset>-<split>-<extractor>.npz``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from robustperf.data.datasets import DataError
from robustperf.data.features import FeatureExtractor, cache_dir, create_extractor

log = logging.getLogger(__name__)

MIN_IMAGES = 2


@dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance of one image set's features, and the extractor that produced them."""

    mu: np.ndarray  # (d,)
    sigma: np.ndarray  # (d, d)
    n: int
    extractor: str

    @classmethod
    def from_features(cls, features: np.ndarray, extractor: str) -> FeatureStats:
        feats = np.asarray(features, dtype=np.float64)
        if feats.ndim != 2 or len(feats) < MIN_IMAGES:
            raise DataError(f"FID needs at least {MIN_IMAGES} feature vectors (N, d), got shape {feats.shape}")
        return cls(feats.mean(0), np.cov(feats, rowvar=False), len(feats), extractor)

    def save(self, path: Path) -> None:
        """Write an .npz (``mu``, ``sigma`` as pytorch-fid names them, plus ``n`` and ``extractor``) atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, mu=self.mu, sigma=self.sigma, n=self.n, extractor=self.extractor)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> FeatureStats:
        with np.load(path) as z:
            if "mu" not in z.files or "sigma" not in z.files:
                raise DataError(f"{path} is not a FID statistics file (needs arrays mu and sigma)")
            extractor = str(z["extractor"]) if "extractor" in z.files else _guess_extractor(z["mu"], path)
            n = int(z["n"]) if "n" in z.files else 0
            return cls(np.asarray(z["mu"], np.float64), np.asarray(z["sigma"], np.float64), n, extractor)


def _guess_extractor(mu: np.ndarray, path: Path) -> str:
    # pytorch-fid / TTUR statistics files hold only mu and sigma: 2048-d means Inception pool3
    if mu.shape == (2048,):
        log.warning("%s names no extractor; its 2048-d statistics are taken as inception-v3-pool3", path)
        return "inception-v3-pool3"
    raise DataError(f"{path} has {mu.shape[0]}-d statistics and no 'extractor' entry; FID cannot tell which "
                    f"features they are (recompute them with robustperf data fid)")


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Args:
        mu1, mu2: means (d,).
        sigma1, sigma2: covariances (d, d), symmetric positive semi-definite.

    Returns:
        ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)), clipped at 0.
    """
    m1, m2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (m1.size, m1.size):
        raise DataError(f"FID statistics disagree in shape: mu {m1.shape} vs {m2.shape}, sigma {s1.shape} vs "
                        f"{s2.shape}")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    w1, v1 = np.linalg.eigh(s1)
    root1 = (v1 * np.sqrt(np.clip(w1, 0.0, None))) @ v1.T  # sigma1^(1/2)
    inner = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = m1 - m2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two statistics of the same extractor (a DataError if the extractors differ)."""
    if a.extractor != b.extractor:
        raise DataError(f"FID statistics from different extractors cannot be compared: {a.extractor!r} vs "
                        f"{b.extractor!r}; recompute one of them with the other extractor")
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


@dataclass(frozen=True)
class FIDResult:
    """A measured FID and what it was measured on; `extractor` must match for two FIDs to be compared."""

    fid: float
    extractor: str
    n_images: int
    n_reference: int
    reference: str
    images: str

    def to_dict(self) -> dict[str, Any]:
        return {"fid": self.fid, "extractor": self.extractor, "n_images": self.n_images,
                "n_reference": self.n_reference, "reference": self.reference, "images": self.images}


def default_extractor(reference: str) -> str:
    """``digits-cnn`` for the 8x8 digits (Inception features of 8x8 images are meaningless), else Inception."""
    return "digits-cnn" if reference == "digits" else "inception-v3-pool3"


# ---------------------------------------------------------------------------------------------------------
# image sets: a dataset name (digits, cifar10, ...), a synthetic .npz / directory, or a statistics .npz


def load_images(spec: str, *, split: str = "train", root: str | None = None,
                max_images: int | None = None) -> tuple[Tensor, Tensor]:
    """Images in [0, 1] (N, C, H, W) and labels of a dataset name (its `split`) or a synthetic set path.

    ``max_images`` takes a seeded random subset (the same one every time).
    """
    from robustperf.data.bundle import eval_tensors
    from robustperf.data.sources import DATASETS, load_synthetic

    if _is_path(spec):
        data, _ = load_synthetic(spec)
        return eval_tensors(data, max_images)
    if spec not in DATASETS:
        DATASETS.get(spec)  # raises with the list of names
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    from robustperf.config import DataConfig

    source = DATASETS.get(spec)(DataConfig(dataset=spec, root=root))
    return eval_tensors(source.train if split == "train" else source.test, max_images)


def _is_path(spec: str) -> bool:
    return os.sep in spec or spec.endswith(".npz") or Path(spec).exists()


def stats_of_images(images: Tensor, extractor: FeatureExtractor, *, batch_size: int = 200) -> FeatureStats:
    """Feature statistics of images in [0, 1] (N, C, H, W)."""
    if images.ndim != 4:
        raise DataError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    return FeatureStats.from_features(extractor.features(images, batch_size=batch_size), extractor.name)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def reference_stats(reference: str, extractor: FeatureExtractor, *, split: str = "train", root: str | None = None,
                    cache: str | Path | None = None, batch_size: int = 200) -> FeatureStats:
    """Statistics of the reference: a statistics .npz as given, a named data set (cached), or a synthetic set.

    Args:
        reference: ``digits``/``cifar10``/..., a path to a synthetic set, or an .npz with ``mu`` and ``sigma``.
        extractor: the feature extractor (its name is part of the cache key).
        split: which split of a named data set.
        root: data.root of a named data set (CIFAR).
        cache: cache directory (default `robustperf.data.features.cache_dir()`).
        batch_size: images per forward pass.
    """
    ref_path = Path(reference).expanduser()
    if ref_path.suffix == ".npz" and ref_path.is_file():
        with np.load(ref_path) as z:
            is_stats = "mu" in z.files and "sigma" in z.files
        if is_stats:
            return FeatureStats.load(ref_path)
    if _is_path(reference):
        images, _ = load_images(reference)
        return stats_of_images(images, extractor, batch_size=batch_size)
    path = cache_dir(cache) / "fid_stats" / f"{_slug(reference)}-{split}-{_slug(extractor.name)}.npz"
    if path.is_file():
        stats = FeatureStats.load(path)
        if stats.extractor == extractor.name:
            log.info("FID reference statistics from cache %s", path)
            return stats
    images, _ = load_images(reference, split=split, root=root)
    stats = stats_of_images(images, extractor, batch_size=batch_size)
    stats.save(path)
    log.info("cached FID reference statistics of %s/%s (%d images) at %s", reference, split, stats.n, path)
    return stats


def measure_fid(images: str | Tensor, reference: str, *, extractor: str | FeatureExtractor | None = None,
                split: str = "train", root: str | None = None, cache: str | Path | None = None,
                max_images: int | None = None, batch_size: int = 200, device: str = "cpu",
                weights: str | None = None) -> FIDResult:
    """FID of an image set against a reference.

    Args:
        images: a synthetic set path / dataset name, or a tensor of images in [0, 1] (N, C, H, W).
        reference: see `reference_stats`.
        extractor: a name from ``EXTRACTORS`` or a built extractor; None: `default_extractor(reference)`.
        split: split of a named reference data set (and of `images` when it is a data set name, too).
        root: data.root for CIFAR-style data sets.
        cache: cache directory for reference statistics and trained extractors.
        max_images: use a seeded random subset of at most this many images of `images`.
        batch_size: images per forward pass.
        device: where the Inception network runs.
        weights: the Inception weights file (default: see `robustperf.data.features.inception_weights_path`).

    Returns:
        A `FIDResult` naming the extractor.
    """
    ext = extractor if extractor is not None and not isinstance(extractor, str) else create_extractor(
        extractor or default_extractor(reference), cache=cache, device=device, weights=weights)
    if isinstance(images, Tensor):
        x, label = images, f"tensor of {len(images)} images"
    else:
        x, _ = load_images(images, split=split, root=root, max_images=max_images)
        label = images
    if len(x) < MIN_IMAGES:
        raise DataError(f"FID needs at least {MIN_IMAGES} images; {label} has {len(x)}")
    ref = reference_stats(reference, ext, split=split, root=root, cache=cache, batch_size=batch_size)
    own = stats_of_images(x, ext, batch_size=batch_size)
    if own.n < own.mu.size or ref.n and ref.n < ref.mu.size:
        log.warning("FID on fewer images (%d / %d) than feature dimensions (%d): the covariance is singular and "
                    "the FID biased upward; use more images", own.n, ref.n, own.mu.size)
    value = fid_from_stats(own, ref)
    return FIDResult(value, ext.name, own.n, ref.n, reference, label)


def write_fid_meta(directory: Path, result: FIDResult, extra: dict[str, Any] | None = None) -> None:
    """Merge the measured FID (and its extractor and reference) into a synthetic directory's meta.json."""
    meta_path = directory / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta.update({"fid": result.fid, "fid_extractor": result.extractor, "fid_reference": result.reference,
                 "fid_n_images": result.n_images, "fid_n_reference": result.n_reference, **(extra or {})})
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, meta_path)


def noised(images: Tensor, sigma: float, *, seed: int = 0) -> Tensor:
    """`images` plus Gaussian pixel noise of standard deviation `sigma`, clipped to [0, 1] (a FID sanity probe)."""
    gen = torch.Generator().manual_seed(seed)
    return (images + sigma * torch.randn(images.shape, generator=gen)).clamp(0.0, 1.0)
