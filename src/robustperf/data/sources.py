"""Where images come from: one loader per `data.dataset` name, registered in `DATASETS`.

Each loader returns a `Source` (train and test sets plus the facts a model needs). Files are read from
local directories only; CIFAR can be downloaded into `root` with ``data.download=true`` where a network
exists.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustperf.config import DataConfig
from robustperf.data.datasets import ArrayDataset, DataError, FolderDataset
from robustperf.data.safe_pickle import UnsafePickleError, load_data_pickle
from robustperf.registry import Registry

log = logging.getLogger(__name__)

# Per-channel statistics of the training sets (the values torchvision-era CIFAR code uses).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# digits: a fixed 80/20 split with this seed, so every run (any runtime.seed) tests on the same images
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2
RANDOM_DEFAULT_TRAIN, RANDOM_DEFAULT_TEST = 10_000, 1_000


@dataclass(frozen=True)
class Source:
    """A loaded data set before subsetting and mixing."""

    train: Any
    test: Any
    num_classes: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None


SourceLoader = Callable[[DataConfig], Source]
DATASETS: Registry[SourceLoader] = Registry("dataset")


@dataclass(frozen=True)
class DatasetFacts:
    """What a built-in data set is, known without loading it (for pricing a run before it starts).

    Attributes:
        channels: image channels.
        side: image height = width at the native size.
        num_classes: classes.
        n_train: images in the training split of the official release.
        n_test: images in the test split of the official release.

    A local copy may hold fewer images (a partial copy, a subset): what is on disk is `count_images`.
    """

    channels: int
    side: int
    num_classes: int
    n_train: int
    n_test: int


def _digits_n_train() -> int:
    return 1797 - round(DIGITS_TEST_FRACTION * 1797)  # scikit-learn's 1,797 images, minus our test split


# The data sets whose facts are fixed; folders, synthetic and random data depend on their config.
DATASET_FACTS: dict[str, DatasetFacts] = {
    "cifar10": DatasetFacts(3, 32, 10, 50_000, 10_000),
    "cifar100": DatasetFacts(3, 32, 100, 50_000, 10_000),
    "digits": DatasetFacts(1, 8, 10, _digits_n_train(), round(DIGITS_TEST_FRACTION * 1797)),
}


def load_digits(cfg: DataConfig) -> Source:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes): pixel values 0..16 scaled into [0, 1]."""
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).div_(16.0).unsqueeze(1)  # (N, 1, 8, 8)
    labels = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    n_test = round(DIGITS_TEST_FRACTION * len(labels))
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    full = ArrayDataset(images, labels, image_size=cfg.image_size)
    train_images = images[train_idx]
    mean, std = float(train_images.mean()), float(train_images.std())
    return Source(full.subset(train_idx), full.subset(test_idx), 10, (mean,), (std,))


def _cifar_dir(cfg: DataConfig, folder: str, tarball_name: str) -> Path:
    """`root` itself or `root/<folder>`, downloading there when asked; errors name the expected path."""
    if cfg.root is None:
        raise DataError(f"dataset {cfg.dataset!r} needs data.root (a directory holding {folder}/), "
                        f"e.g. --set data.root=./data --set data.download=true")
    root = Path(cfg.root).expanduser()
    for candidate in (root / folder, root):
        if (candidate / ("test_batch" if folder.startswith("cifar-10-") else "test")).is_file():
            return candidate
    if cfg.download:
        _download_cifar(root, cfg.dataset)
        return root / folder
    raise DataError(f"no {cfg.dataset} data at {root / folder} (expected the python-format {tarball_name} "
                    f"extracted there); fix: --set data.download=true, or point data.root at it")


def _download_cifar(root: Path, dataset: str) -> None:
    """Fetch and extract the official tarball with torchvision's checksummed downloader."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if dataset == "cifar10" else datasets.CIFAR100
    root.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s into %s", dataset, root)
    try:
        cls(str(root), train=True, download=True)
    except Exception as exc:  # URLError, socket errors...: the message should say what to do
        raise DataError(f"downloading {dataset} into {root} failed ({exc}); copy the python-format "
                        f"tarball's contents there by hand") from exc


def _read_pickle(path: Path) -> dict[Any, Any]:
    if not path.is_file():
        raise DataError(f"missing CIFAR file {path}: the directory is incomplete (re-extract the tarball)")
    # the official CIFAR files are Python pickles: read them admitting only plain data and numpy arrays,
    # so a crafted file under data.root (a shared or edited config) cannot run code
    try:
        batch = load_data_pickle(path, encoding="bytes")
    except UnsafePickleError as exc:
        raise DataError(str(exc)) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{path} is not a readable CIFAR python batch ({type(exc).__name__}: {exc}); "
                        f"re-extract the tarball") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR python batch (holds a {type(batch).__name__}, not a dict)")
    return batch


def _cifar_arrays(files: list[Path], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for f in files:
        # the official files have bytes keys; re-pickled copies may have str keys
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in _read_pickle(f).items()}
        if "data" not in batch or label_key not in batch:
            raise DataError(f"{f} is not a CIFAR python batch (needs keys 'data' and {label_key!r})")
        xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[label_key], dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def _report_counts(dataset: str, directory: Path, n_train: int, n_test: int) -> None:
    """Say how many images the files hold; a copy smaller than the official release gets a warning."""
    official = DATASET_FACTS[dataset]
    log.info("%s at %s: %d train / %d test images", dataset, directory, n_train, n_test)
    key = (str(directory), n_train, n_test)
    if (n_train, n_test) != (official.n_train, official.n_test) and key not in _WARNED:
        _WARNED.add(key)  # once per process and copy: a study reads the same directory many times
        log.warning("%s at %s holds %d train / %d test images, not the official %d / %d: a partial copy; "
                    "every size (n_train checks, epochs -> samples, pricing, records) uses the real counts",
                    dataset, directory, n_train, n_test, official.n_train, official.n_test)


_WARNED: set[tuple[str, int, int]] = set()
_COUNT_CACHE: dict[tuple[str, str, tuple[float, ...]], tuple[int, int]] = {}


def count_images(cfg: DataConfig) -> tuple[int, int] | None:
    """(train, test) images of the data set `cfg` names as they are on disk; None when that is not known.

    Known for CIFAR directories that exist (read once per directory and file times) and for the random
    data set; None for a CIFAR root that holds no files yet (pricing a run planned for another machine),
    so the caller falls back on the official `DATASET_FACTS`.
    """
    if cfg.dataset == "random":
        return cfg.n_train or RANDOM_DEFAULT_TRAIN, cfg.n_test or RANDOM_DEFAULT_TEST
    if cfg.dataset not in ("cifar10", "cifar100") or cfg.root is None:
        return None
    try:
        d = _cifar_dir(cfg.model_copy(update={"download": False}), *_CIFAR_LAYOUT[cfg.dataset])
    except DataError:
        return None
    files = sorted(p for p in d.iterdir() if p.is_file())
    key = (cfg.dataset, str(d.resolve()), tuple(p.stat().st_mtime for p in files))
    if key not in _COUNT_CACHE:
        source = DATASETS.get(cfg.dataset)(cfg)
        _COUNT_CACHE[key] = (len(source.train), len(source.test))
    return _COUNT_CACHE[key]


_CIFAR_LAYOUT = {"cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz"),
                 "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz")}


def load_cifar10(cfg: DataConfig) -> Source:
    """CIFAR-10 from ``root/cifar-10-batches-py`` (data_batch_1..5, test_batch); any number of images per batch."""
    d = _cifar_dir(cfg, *_CIFAR_LAYOUT["cifar10"])
    x_tr, y_tr = _cifar_arrays([d / f"data_batch_{i}" for i in range(1, 6)], "labels")
    x_te, y_te = _cifar_arrays([d / "test_batch"], "labels")
    _report_counts("cifar10", d, len(y_tr), len(y_te))
    return Source(ArrayDataset(x_tr, y_tr, image_size=cfg.image_size),
                  ArrayDataset(x_te, y_te, image_size=cfg.image_size), 10, CIFAR10_MEAN, CIFAR10_STD)


def load_cifar100(cfg: DataConfig) -> Source:
    """CIFAR-100 (fine labels) from ``root/cifar-100-python`` (train, test)."""
    d = _cifar_dir(cfg, *_CIFAR_LAYOUT["cifar100"])
    x_tr, y_tr = _cifar_arrays([d / "train"], "fine_labels")
    x_te, y_te = _cifar_arrays([d / "test"], "fine_labels")
    _report_counts("cifar100", d, len(y_tr), len(y_te))
    return Source(ArrayDataset(x_tr, y_tr, image_size=cfg.image_size),
                  ArrayDataset(x_te, y_te, image_size=cfg.image_size), 100, CIFAR100_MEAN, CIFAR100_STD)


def load_imagefolder(cfg: DataConfig) -> Source:
    """``root/train/<class>/*`` and ``root/val/<class>/*`` (or ``test``), resized to image_size (default 224)."""
    if cfg.root is None:
        raise DataError("dataset 'imagefolder' needs data.root with train/ and val/ sub-folders")
    root = Path(cfg.root).expanduser()
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise DataError(f"imagefolder root {root} must hold train/ and val/ (or test/), one sub-folder per class")
    size = cfg.image_size or 224
    train = FolderDataset(str(root / "train"), size, num_workers=cfg.num_workers)
    test = FolderDataset(str(test_dir), size, num_workers=cfg.num_workers)
    if train.classes != test.classes:
        raise DataError(f"{root}/train and {test_dir} have different class folders")
    return Source(train, test, len(train.classes), IMAGENET_MEAN, IMAGENET_STD)


def load_random(cfg: DataConfig) -> Source:
    """Uniform random uint8 images of shape (3, image_size, image_size) and 10 classes, for benchmarks."""
    size = cfg.image_size or 32
    gen = torch.Generator().manual_seed(12345)
    n_train, n_test = cfg.n_train or RANDOM_DEFAULT_TRAIN, cfg.n_test or RANDOM_DEFAULT_TEST

    def make(n: int) -> ArrayDataset:
        x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
        return ArrayDataset(x, torch.randint(0, 10, (n,), generator=gen))

    return Source(make(n_train), make(n_test), 10, (0.5,) * 3, (0.25,) * 3)


def load_synthetic_only(cfg: DataConfig) -> Source:
    """A synthetic set on its own (`synthetic_path`); its last 10% (at most 10,000) is held out as test."""
    if not cfg.synthetic_path:
        raise DataError("dataset 'synthetic' needs data.synthetic_path (an .npz or a directory of .npy files)")
    data, _ = load_synthetic(cfg.synthetic_path, image_size=cfg.image_size)
    n_test = min(10_000, max(1, len(data) // 10))
    n = len(data)
    test = data.subset(torch.arange(n - n_test, n))
    labels = data.labels
    return Source(data.subset(torch.arange(n - n_test)), test, int(labels.max()) + 1, None, None)


# explicit registration (not decorators): mypy cannot type Registry.register's decorator form for callables
DATASETS.register("digits", load_digits)
DATASETS.register("cifar10", load_cifar10)
DATASETS.register("cifar100", load_cifar100)
DATASETS.register("imagefolder", load_imagefolder)
DATASETS.register("random", load_random)
DATASETS.register("synthetic", load_synthetic_only)


def load_synthetic(path: str, *, image_size: int | None = None) -> tuple[ArrayDataset, float | None]:
    """Read a synthetic set and its FID tag.

    Args:
        path: an ``.npz`` with ``images`` (uint8, NHWC or NCHW) and ``labels`` (``x``/``y`` also accepted),
            or a directory with ``images.npy`` and ``labels.npy`` (memory-mapped, so 20M images need not fit
            in RAM) and an optional ``meta.json`` such as ``{"fid": 1.65}``.
        image_size: resize to this side length.

    Returns:
        (data set, FID from the file's metadata or None).
    """
    p = Path(path).expanduser()
    fid: float | None = None
    if p.is_dir():
        if not (p / "images.npy").is_file() or not (p / "labels.npy").is_file():
            raise DataError(f"synthetic directory {p} must hold images.npy and labels.npy (and meta.json)")
        images = np.load(p / "images.npy", mmap_mode="r")
        labels = np.load(p / "labels.npy")
        if (p / "meta.json").is_file():
            fid = json.loads((p / "meta.json").read_text()).get("fid")
    elif p.is_file() and p.suffix == ".npz":
        with np.load(p) as npz:
            keys = set(npz.files)
            ik = "images" if "images" in keys else "x"
            lk = "labels" if "labels" in keys else "y"
            if ik not in keys or lk not in keys:
                raise DataError(f"{p} must hold arrays 'images' and 'labels' (found {sorted(keys)})")
            images, labels = np.asarray(npz[ik]), np.asarray(npz[lk])
            fid = float(npz["fid"]) if "fid" in keys else None
    else:
        raise DataError(f"synthetic_path {p} is neither an .npz file nor a directory of .npy files")
    if images.ndim != 4:
        raise DataError(f"synthetic images in {p} must be 4-D (N, H, W, C) or (N, C, H, W), got {images.shape}")
    nhwc = images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3)
    tensor_images = torch.from_numpy(np.ascontiguousarray(images)) if not isinstance(images, np.memmap) else images
    data = ArrayDataset(tensor_images, labels.astype(np.int64), image_size=image_size, channels_last_storage=nhwc)
    return data, None if fid is None else float(fid)
