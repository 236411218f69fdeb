"""Real CIFAR-10 images through the `cifar10` loader: the 5,482/1,017-image subset of the official release.

The subset lives outside the repository (``../shared/data/cifar10_subset`` next to the checkout, or
``$ROBUSTPERF_CIFAR10_SUBSET``); every test here skips, saying so, where it is absent. Its README and
provenance.json state the facts checked below (first test labels, class counts).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch

from robustperf.config import DataConfig, load_config

REPO = Path(__file__).resolve().parents[2]
FIRST_TEST_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # as in the official test_batch
TRAIN_PER_CLASS = [542, 571, 531, 530, 567, 527, 545, 553, 577, 539]
TEST_PER_CLASS = [105, 93, 100, 104, 92, 87, 114, 102, 110, 110]


def _subset_dir() -> Path | None:
    env = os.environ.get("ROBUSTPERF_CIFAR10_SUBSET")
    candidates = [Path(env)] if env else []
    # ../shared next to the checkout (a worktree may sit one level deeper)
    candidates += [parent / "shared" / "data" / "cifar10_subset" for parent in REPO.parents[:3]]
    return next((c for c in candidates if (c / "cifar-10-batches-py" / "test_batch").is_file()), None)


SUBSET = _subset_dir()
pytestmark = pytest.mark.skipif(SUBSET is None, reason="the real CIFAR-10 subset is absent (looked for "
                                "../shared/data/cifar10_subset; set ROBUSTPERF_CIFAR10_SUBSET to its directory)")


@pytest.fixture(scope="module")
def source():  # type: ignore[no-untyped-def]
    from robustperf.data.sources import DATASETS

    return DATASETS.get("cifar10")(DataConfig(dataset="cifar10", root=str(SUBSET)))


def test_shapes_labels_and_class_balance(source, caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert source.train.shape == (3, 32, 32) and len(source.train) == 5482 and len(source.test) == 1017
    assert source.test.labels[:10].tolist() == FIRST_TEST_LABELS
    assert torch.bincount(source.train.labels, minlength=10).tolist() == TRAIN_PER_CLASS
    assert torch.bincount(source.test.labels, minlength=10).tolist() == TEST_PER_CLASS
    x, y = source.test[0]
    assert x.dtype == torch.float32 and 0.0 <= float(x.min()) < float(x.max()) <= 1.0 and int(y) == 3
    assert len({int(v) for v in source.test[1][0].flatten().mul(255).round()}) > 50  # a natural image, not flat
    # the loader says the copy is partial (once per process and directory)
    from robustperf.data import sources
    from robustperf.data.sources import DATASETS

    monkeypatch.setattr(sources, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="robustperf.data.sources"):
        DATASETS.get("cifar10")(DataConfig(dataset="cifar10", root=str(SUBSET)))
    assert "5482 train / 1017 test images, not the official 50000 / 10000" in caplog.text


def test_sizes_everywhere_use_the_real_count() -> None:
    from robustperf.cost.planning import dataset_facts, planned_samples
    from robustperf.data import DataError, check_data
    from robustperf.data.sources import count_images

    data = DataConfig(dataset="cifar10", root=str(SUBSET))
    assert count_images(data) == (5482, 1017)
    cfg = load_config(REPO / "configs" / "cifar10_pgd_at_resnet18.yaml", [f"data.root={SUBSET}"])
    shape, classes, size = dataset_facts(cfg)
    assert (shape, classes, size) == ((3, 32, 32), 10, 5482)
    assert planned_samples(cfg, size)[0] == 110 * 5482  # epochs -> samples on the real count, not 50,000
    with pytest.raises(DataError, match="has 5482 training samples"):
        check_data(data.model_copy(update={"n_train": 6000}))
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    out = CliRunner().invoke(app, ["data", "info", str(REPO / "configs" / "cifar10_small.yaml"), "--set",
                                   f"data.root={SUBSET}", "--set", "data.n_train=1000"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "train samples │ 1000" in text and "5482 / 1017 (a partial copy" in text


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from robustperf.training import train

    cfg = load_config(REPO / "configs" / "cifar10_small.yaml", [
        f"data.root={SUBSET}", "data.n_train=512", "optim.epochs=1", "optim.warmup_epochs=0",
        "model.kwargs.width=4", "method.attack.n_steps=2", "eval.n_examples=64", "runtime.progress=false"])
    return Path(train(cfg, tmp_path_factory.mktemp("runs")).path)


def test_short_pgd_at_run_records_the_real_data(short_run: Path) -> None:
    from robustperf.store import RunDir

    record = RunDir(short_run).read_record()
    assert record is not None and record.status == "finished"
    assert record.final["samples_seen"] == 512
    assert 0.0 <= record.final["robust_acc"] <= record.final["clean_acc"] <= 1.0
    facts = record.provenance["data"]
    assert facts == {"dataset": "cifar10", "n_train": 512, "n_test": 1017, "available_train": 5482,
                     "available_test": 1017, "official_train": 50000, "official_test": 10000, "partial": True}


def test_autoattack_on_real_images(short_run: Path) -> None:
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    out = CliRunner().invoke(app, ["evaluate", str(short_run), "--attack", "autoattack", "--n-examples", "32",
                                   "--device", "cpu", "--eps", "8/255"])
    assert out.exit_code == 0, out.output
    summary = json.loads((short_run / "evaluations" / "autoattack-standard-linf-eps0.03137-n32-best.json").read_text())
    assert 0.0 <= summary["robust_acc"] <= summary["clean_acc"] <= 1.0
    assert set(summary["per_attack"]) == {"apgd-ce", "apgd-t", "fab-t", "square"}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["cifar10_trades_wrn28_10.yaml", "cifar10_pgd_at_resnet18.yaml"])
def test_paper_recipe_runs_one_short_epoch_on_cpu(recipe: str, tmp_path: Path) -> None:
    """The full-size paper recipes (WRN-28-10 TRADES, ResNet-18 PGD-AT) train one short epoch on real images.

    Only the sizes shrink (one batch of 8 training images, 4 evaluation images, PGD-2 for the per-epoch
    evaluation, a CPU); the model, method, attack, optimiser, schedule, EMA and BN mode are the recipe's.
    """
    from robustperf.store import RunDir
    from robustperf.training import train

    cfg = load_config(REPO / "configs" / recipe, [
        f"data.root={SUBSET}", "data.n_train=8", "data.batch_size=8", "data.num_workers=0", "optim.epochs=1",
        "optim.samples=8", "optim.warmup_epochs=0", "eval.n_examples=4", "eval.attack.n_steps=2",
        "runtime.device=cpu", "runtime.progress=false"])
    record = RunDir(train(cfg, tmp_path).path).read_record()
    assert record is not None and record.status == "finished", record
    assert record.final["samples_seen"] == 8
    assert 0.0 <= record.final["robust_acc"] <= record.final["clean_acc"] <= 1.0
    assert record.provenance["data"]["available_train"] == 5482
