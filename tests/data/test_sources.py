"""Data sources: digits, CIFAR pickles (written here), synthetic .npz / .npy + meta.json, image folders, random."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from robustperf.config import DataConfig
from robustperf.data import DataError, build_data, eval_tensors, make_train_loader
from robustperf.registry import RegistryError


def _write_cifar(root: Path, *, hundred: bool = False, per_file: int = 6) -> None:
    """Tiny files in the official python-pickle layout (pixel rows are R plane, G plane, B plane)."""
    rng = np.random.default_rng(0)
    if hundred:
        d = root / "cifar-100-python"
        d.mkdir(parents=True)
        for name, n in (("train", 2 * per_file), ("test", per_file)):
            batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                     b"fine_labels": list(rng.integers(0, 100, n)), b"coarse_labels": [0] * n}
            (d / name).write_bytes(pickle.dumps(batch))
        return
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        data[:, 0] = k  # the first red pixel tells which file a sample came from
        (d / name).write_bytes(pickle.dumps({b"data": data, b"labels": [k % 10] * per_file}))


def test_digits_default_split_and_subsets() -> None:
    full = build_data(DataConfig(), seed=0)
    assert full.name == "digits" and full.num_classes == 10 and full.input_shape == (1, 8, 8)
    assert len(full.train) + len(full.test) == 1797 and len(full.test) == 359
    x, y = eval_tensors(full.test, None)
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9  # /16 puts 16 at exactly 1
    # the test set does not depend on the run seed; the n_train subset does (and stays inside train)
    other = build_data(DataConfig(n_train=100, n_test=50), seed=1)
    x2, y2 = eval_tensors(other.test, None)
    torch.testing.assert_close(x2, x[:50])
    assert len(other.train) == 100
    sub0 = eval_tensors(build_data(DataConfig(n_train=100), seed=0).train, None)[1]
    sub1 = eval_tensors(other.train, None)[1]
    assert not torch.equal(sub0, sub1)


def test_digits_upsampled_with_image_size() -> None:
    bundle = build_data(DataConfig(image_size=16, n_train=10), seed=0)
    assert bundle.input_shape == (1, 16, 16)
    x, _ = eval_tensors(bundle.test, 4)
    assert x.shape == (4, 1, 16, 16)
    xb, _ = next(iter(make_train_loader(bundle, DataConfig(image_size=16, batch_size=4), seed=0, device="cpu")))
    assert xb.shape == (4, 1, 16, 16)


def test_eval_tensors_is_a_fixed_seeded_subset() -> None:
    test = build_data(DataConfig(), seed=0).test
    a, ya = eval_tensors(test, 20, seed=0)
    b, yb = eval_tensors(test, 20, seed=0)
    c, _ = eval_tensors(test, 20, seed=1)
    assert a.shape == (20, 1, 8, 8)
    torch.testing.assert_close(a, b)
    assert torch.equal(ya, yb) and not torch.equal(a, c)


def test_cifar10_from_pickle_files(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    bundle = build_data(DataConfig(dataset="cifar10", root=str(tmp_path)), seed=0)
    assert (bundle.num_classes, bundle.input_shape) == (10, (3, 32, 32))
    assert len(bundle.train) == 30 and len(bundle.test) == 6
    x, y = eval_tensors(bundle.train, None)
    assert torch.equal(torch.round(x[:, 0, 0, 0] * 255).long(), y)  # file k holds label k and pixel k
    assert bundle.mean is not None and len(bundle.mean) == 3
    # root may also be the batches directory itself
    direct = build_data(DataConfig(dataset="cifar10", root=str(tmp_path / "cifar-10-batches-py")), seed=0)
    assert len(direct.test) == 6


def test_cifar100_from_pickle_files(tmp_path: Path) -> None:
    _write_cifar(tmp_path, hundred=True)
    bundle = build_data(DataConfig(dataset="cifar100", root=str(tmp_path), n_train=5), seed=0)
    assert bundle.num_classes == 100 and len(bundle.train) == 5 and len(bundle.test) == 6


def test_missing_cifar_names_the_path_and_the_download_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path)), seed=0)
    assert str(tmp_path / "cifar-10-batches-py") in str(err.value)
    assert "data.download=true" in str(err.value)
    with pytest.raises(DataError, match="data.root"):
        build_data(DataConfig(dataset="cifar100"), seed=0)


def test_unknown_dataset_lists_alternatives() -> None:
    with pytest.raises(RegistryError, match="cifar10"):
        build_data(DataConfig(dataset="cifar1O"), seed=0)


def _synthetic_arrays(n: int, nhwc: bool) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(n) % 10
    images = np.zeros((n, 32, 32, 3) if nhwc else (n, 3, 32, 32), dtype=np.uint8)
    if nhwc:
        images[:, 0, 0, 0] = np.arange(n)
    else:
        images[:, 0, 0, 0] = np.arange(n)
    return images, labels


@pytest.mark.parametrize("nhwc", [True, False])
def test_synthetic_npz_is_mixed_into_batches(tmp_path: Path, nhwc: bool) -> None:
    _write_cifar(tmp_path)
    images, labels = _synthetic_arrays(40, nhwc)
    np.savez(tmp_path / "syn.npz", images=images, labels=labels)
    cfg = DataConfig(dataset="cifar10", root=str(tmp_path), synthetic_path=str(tmp_path / "syn.npz"),
                     synthetic_fraction=0.7, synthetic_fid=2.5, batch_size=10)
    bundle = build_data(cfg, seed=0)
    assert bundle.synthetic is not None and len(bundle.synthetic) == 40 and bundle.synthetic_fid == 2.5
    loader = make_train_loader(bundle, cfg, seed=0, device="cpu")
    x, y = next(iter(loader))
    assert x.shape == (10, 3, 32, 32)
    syn_x = x[3:]  # 3 real then round(0.7 * 10) = 7 synthetic
    ids = torch.round(syn_x[:, 0, 0, 0] * 255).long()
    torch.testing.assert_close(y[3:], ids % 10)


def test_synthetic_directory_memmap_with_meta_fid(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    images, labels = _synthetic_arrays(25, nhwc=True)
    d = tmp_path / "syn"
    d.mkdir()
    np.save(d / "images.npy", images)
    np.save(d / "labels.npy", labels)
    (d / "meta.json").write_text(json.dumps({"fid": 1.65, "generator": "edm"}))
    cfg = DataConfig(dataset="cifar10", root=str(tmp_path), synthetic_path=str(d), synthetic_fraction=0.5,
                     batch_size=4, n_train=8)
    bundle = build_data(cfg, seed=0)
    assert bundle.synthetic_fid == 1.65
    assert isinstance(bundle.synthetic.images, np.memmap)  # not read into memory
    loader = make_train_loader(bundle, cfg, seed=0, device="cpu")
    ys = torch.cat([y[2:] for _, y in loader])
    assert len(loader) == 4 and len(set(ys.tolist())) <= 10 and len(ys) == 8
    # the config's FID tag wins over the file's
    tagged = build_data(cfg.model_copy(update={"synthetic_fid": 3.0}), seed=0)
    assert tagged.synthetic_fid == 3.0


def test_synthetic_only_dataset_and_bad_synthetic_files(tmp_path: Path) -> None:
    images, labels = _synthetic_arrays(50, nhwc=True)
    np.savez(tmp_path / "syn.npz", x=images, y=labels)
    bundle = build_data(DataConfig(dataset="synthetic", synthetic_path=str(tmp_path / "syn.npz")), seed=0)
    assert (len(bundle.train), len(bundle.test), bundle.num_classes) == (45, 5, 10)
    np.savez(tmp_path / "bad.npz", pixels=images)
    with pytest.raises(DataError, match="'images' and 'labels'"):
        build_data(DataConfig(dataset="synthetic", synthetic_path=str(tmp_path / "bad.npz")), seed=0)
    with pytest.raises(DataError, match="images.npy"):
        build_data(DataConfig(dataset="synthetic", synthetic_path=str(tmp_path)), seed=0)


def test_synthetic_with_other_shape_is_rejected(tmp_path: Path) -> None:
    np.savez(tmp_path / "syn.npz", images=np.zeros((5, 16, 16, 3), np.uint8), labels=np.zeros(5))
    with pytest.raises(DataError, match="shape"):
        build_data(DataConfig(synthetic_path=str(tmp_path / "syn.npz"), synthetic_fraction=0.5), seed=0)


def test_imagefolder_resizes_to_image_size(tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for k, cls in enumerate(("cat", "dog")):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((20, 30, 3), 40 * k + i, np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    cfg = DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=12, batch_size=4, num_workers=2)
    bundle = build_data(cfg, seed=0)
    assert (bundle.num_classes, bundle.input_shape, len(bundle.train)) == (2, (3, 12, 12), 6)
    x, y = eval_tensors(bundle.test, None)
    assert x.shape == (6, 3, 12, 12)
    torch.testing.assert_close(x[:, 0, 5, 5] * 255, (40 * y + torch.tensor([0, 1, 2, 0, 1, 2])).float())
    xb, _ = next(iter(make_train_loader(bundle, cfg, seed=0, device="cpu")))
    assert xb.shape == (4, 3, 12, 12)
    with pytest.raises(DataError, match="train/ and val/"):
        build_data(DataConfig(dataset="imagefolder", root=str(tmp_path / "train")), seed=0)


def test_random_dataset_for_benchmarks() -> None:
    bundle = build_data(DataConfig(dataset="random", image_size=16, n_train=64, n_test=8), seed=0)
    assert (bundle.input_shape, len(bundle.train), len(bundle.test)) == ((3, 16, 16), 64, 8)
    x, y = eval_tensors(bundle.train, None)
    assert x.min() >= 0 and x.max() <= 1 and y.max() < 10


def test_download_failure_is_a_data_error_naming_the_manual_fix(tmp_path: Path, monkeypatch) -> None:
    # no network in CI: stand in for torchvision's downloader failing the way it does offline
    import torchvision.datasets

    class Offline:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    with pytest.raises(DataError, match="downloading cifar10 .* failed .*by hand"):
        build_data(DataConfig(dataset="cifar10", root=str(tmp_path / "new"), download=True), seed=0)
    assert (tmp_path / "new").is_dir()
