"""FID: the Frechet distance against an independent implementation, the extractors, the cache and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.data.datasets import DataError
from robustperf.data.features import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    WEIGHTS_ENV,
    InceptionPool3,
    check_inception_weights,
    create_extractor,
)
from robustperf.data.fid import (
    FeatureStats,
    fid_from_stats,
    frechet_distance,
    load_images,
    measure_fid,
    noised,
    reference_stats,
    stats_of_images,
)

runner = CliRunner()


def scipy_frechet(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """The textbook formula with scipy's general matrix square root (as pytorch-fid / TTUR compute it)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean)))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fid_cache")


@pytest.fixture(scope="module")
def digits_extractor(cache: Path):  # trains the small digits CNN once (~15 s on one CPU thread)
    torch.set_num_threads(1)
    return create_extractor("digits-cnn", cache=cache)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_images("digits")[0]


def test_frechet_distance_matches_scipy_on_random_gaussians() -> None:
    rng = np.random.default_rng(0)
    for d in (2, 16, 64):
        a, b = rng.normal(size=(3 * d, d)), rng.normal(size=(3 * d, d)) * 1.5 + 0.3
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        mu1, mu2 = a.mean(0), b.mean(0)
        ours, ref = frechet_distance(mu1, s1, mu2, s2), scipy_frechet(mu1, s1, mu2, s2)
        assert ours == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_of_identical_gaussians_is_zero_and_rejects_shape_mismatch() -> None:
    s = np.cov(np.random.default_rng(1).normal(size=(100, 8)), rowvar=False)
    assert frechet_distance(np.zeros(8), s, np.zeros(8), s) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(np.zeros(8), s, np.ones(8), s) == pytest.approx(8.0, rel=1e-9)  # mean shift only
    with pytest.raises(DataError, match="shape"):
        frechet_distance(np.zeros(8), s, np.zeros(7), s[:7, :7])


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # scipy's sqrtm on an ill-conditioned product
def test_two_halves_of_digits_match_scipy_on_the_same_features(digits_extractor, digits) -> None:
    perm = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    half = len(digits) // 2
    a = stats_of_images(digits[perm[:half]], digits_extractor)
    b = stats_of_images(digits[perm[half:]], digits_extractor)
    ours = fid_from_stats(a, b)
    assert ours == pytest.approx(scipy_frechet(a.mu, a.sigma, b.mu, b.sigma), rel=1e-6)
    assert ours > 0.1  # two finite samples differ; a constant 0 would pass a tolerance test too


def test_fid_of_a_set_against_itself_is_zero_and_noise_raises_it_monotonically(digits_extractor, digits) -> None:
    ref = stats_of_images(digits, digits_extractor)
    assert fid_from_stats(stats_of_images(digits, digits_extractor), ref) == pytest.approx(0.0, abs=1e-6)
    fids = [fid_from_stats(stats_of_images(noised(digits, s), digits_extractor), ref) for s in (0.02, 0.05, 0.1, 0.2)]
    assert all(a < b for a, b in zip(fids, fids[1:], strict=False)), fids
    assert fids[0] > 0


def test_digits_extractor_is_a_real_classifier_named_by_its_weights(digits_extractor, cache: Path) -> None:
    assert digits_extractor.test_accuracy > 0.9
    assert digits_extractor.name.startswith("digits-cnn-v1-")
    again = create_extractor("digits-cnn", cache=cache)  # from the cache: same weights, same name
    assert again.name == digits_extractor.name


def test_statistics_of_different_extractors_are_never_compared() -> None:
    s = FeatureStats(np.zeros(4), np.eye(4), 10, "digits-cnn-v1-aaaa")
    with pytest.raises(DataError, match="different extractors"):
        fid_from_stats(s, FeatureStats(np.zeros(4), np.eye(4), 10, "inception-v3-pool3"))


def test_reference_statistics_are_cached_per_dataset_and_extractor(digits_extractor, cache: Path) -> None:
    first = reference_stats("digits", digits_extractor, split="test", cache=cache)
    path = cache / "fid_stats" / f"digits-test-{digits_extractor.name}.npz"
    assert path.is_file()
    loaded = FeatureStats.load(path)
    assert loaded.extractor == digits_extractor.name and loaded.n == first.n == 359
    np.testing.assert_array_equal(loaded.sigma, first.sigma)
    # a cached file is what later calls read: plant a marker mean and see it come back
    FeatureStats(first.mu + 1.0, first.sigma, first.n, first.extractor).save(path)
    assert np.allclose(reference_stats("digits", digits_extractor, split="test", cache=cache).mu, first.mu + 1.0)
    path.unlink()


def test_cli_fid_measures_a_synthetic_set_and_writes_its_meta(tmp_path: Path, cache: Path, digits_extractor) -> None:
    out = tmp_path / "copy"
    made = runner.invoke(app, ["data", "make-synthetic", "digits", "--out", str(out), "--set", "data.n_train=400"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, ["data", "fid", str(out), "--ref", "digits", "--split", "test", "--cache-dir",
                                 str(cache), "--write-meta", "--json"], terminal_width=200)
    assert result.exit_code == 0, result.output
    measured = json.loads(result.output)
    assert measured["extractor"] == digits_extractor.name and measured["n_images"] == 400
    meta = json.loads((out / "meta.json").read_text())
    assert meta["fid"] == pytest.approx(measured["fid"]) and meta["fid_extractor"] == digits_extractor.name
    # the same number as the library call, and > 0: 400 training images are not the 359 test images
    direct = measure_fid(str(out), "digits", split="test", cache=cache)
    assert measured["fid"] == pytest.approx(direct.fid, rel=1e-9) and measured["fid"] > 0.1


def test_cli_import_measures_the_fid_of_an_external_npz(tmp_path: Path, cache: Path, digits) -> None:
    noisy = noised(digits[:300], 0.1)
    labels = load_images("digits")[1][:300]
    src = tmp_path / "external.npz"
    np.savez(src, images=(noisy.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8), labels=labels.numpy())
    out = tmp_path / "imported"
    result = runner.invoke(app, ["data", "import", str(src), "--out", str(out), "--ref", "digits",
                                 "--cache-dir", str(cache)], terminal_width=200)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    clean = measure_fid(digits[:300], "digits", cache=cache).fid
    assert meta["fid"] > clean + 1.0  # the noised copy is measurably worse than the clean images
    assert np.load(out / "images.npy").shape == (300, 8, 8, 1)


def test_missing_inception_weights_error_names_file_url_and_place(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "nowhere.pth"))
    with pytest.raises(DataError) as err:
        create_extractor("inception-v3-pool3")
    msg = str(err.value)
    assert INCEPTION_WEIGHTS_FILE in msg and INCEPTION_WEIGHTS_URL in msg and WEIGHTS_ENV in msg
    assert "6726825d" in msg
    wrong = tmp_path / INCEPTION_WEIGHTS_FILE
    wrong.write_bytes(b"not the weights")
    with pytest.raises(DataError, match="sha256"):
        check_inception_weights(wrong)


def test_cli_fid_without_weights_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "nowhere.pth"))
    result = runner.invoke(app, ["data", "fid", "digits", "--ref", "cifar10", "--cache-dir", str(tmp_path)],
                           terminal_width=400)
    assert result.exit_code == 2
    assert INCEPTION_WEIGHTS_FILE in result.output


def _perturbed_inception() -> InceptionPool3:
    """Random weights and random BatchNorm statistics, so two implementations must agree on every layer."""
    torch.manual_seed(0)
    net = InceptionPool3().eval()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net


def test_inception_pool3_matches_pytorch_fid_layer_for_layer(monkeypatch) -> None:
    """Same state dict in both: the architecture, pooling variants, resize and [-1, 1] scaling must agree."""
    pfi = pytest.importorskip("pytorch_fid.inception")
    torch.set_num_threads(1)
    ours = _perturbed_inception()
    state = ours.net.state_dict()
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: state)
    theirs = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = ours(x), theirs(x)[0].flatten(1)
        grey = ours(x[:, :1])
    assert a.shape == (2, 2048)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grey, ours(x[:, :1].expand(-1, 3, -1, -1)))


CIFAR_ROOT_ENV = "ROBUSTPERF_CIFAR10_ROOT"
# CIFAR-10 train (50k) vs test (10k) with the 2015 Inception pool3 features: 3.1508 from the official TTUR
# (TensorFlow) code, as tabulated in the README of github.com/w86763777/pytorch-image-generation-metrics
# ("Reproducing Results of Official Implementations on CIFAR-10"; its PyTorch port gets 3.1525).
CIFAR10_TRAIN_VS_TEST_FID = 3.1508


@pytest.mark.slow
@pytest.mark.skipif(not (os.environ.get(WEIGHTS_ENV) and os.environ.get(CIFAR_ROOT_ENV)),
                    reason=f"needs the standard Inception weights ({INCEPTION_WEIGHTS_FILE}, set {WEIGHTS_ENV}) and "
                           f"CIFAR-10 ({CIFAR_ROOT_ENV}); neither can be downloaded here (run on a GPU machine)")
def test_cifar10_train_vs_test_matches_the_published_value_and_pytorch_fid(monkeypatch) -> None:
    """CIFAR-10 train (50k) vs test (10k): within 1 % of the published 3.1508 and of pytorch-fid on the same images."""
    pfi = pytest.importorskip("pytorch_fid.inception")
    from pytorch_fid.fid_score import calculate_frechet_distance

    device = "cuda" if torch.cuda.is_available() else "cpu"
    root = os.environ[CIFAR_ROOT_ENV]
    ours = measure_fid("cifar10", "cifar10", split="test", root=root, device=device)  # test vs test: 0
    assert ours.fid == pytest.approx(0.0, abs=1e-3)
    train, _ = load_images("cifar10", split="train", root=root)
    result = measure_fid(train, "cifar10", split="test", root=root, device=device)
    # pytorch-fid's own network (loading the same file) and its scipy Frechet distance
    state = torch.load(os.environ[WEIGHTS_ENV], map_location="cpu", weights_only=True)
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: state)
    net = pfi.InceptionV3([3]).to(device).eval()
    test, _ = load_images("cifar10", split="test", root=root)

    def feats(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return torch.cat([net(x[i:i + 500].to(device))[0].flatten(1).cpu() for i in range(0, len(x), 500)]).numpy()

    f1, f2 = feats(train), feats(test)
    theirs = calculate_frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))
    assert result.extractor == "inception-v3-pool3"
    assert result.fid == pytest.approx(theirs, rel=0.01)
    assert result.fid == pytest.approx(CIFAR10_TRAIN_VS_TEST_FID, rel=0.01)
