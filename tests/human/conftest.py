"""Fixtures for the human-study tests: a generated adversarial export and a study built from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robustperf.human.study import Study, create_study

CLASSES = ("plane", "car", "bird")


def write_export(path: Path, n_fooled: int = 12, n_evaluated: int = 40, n_correct: int = 25, seed: int = 0,
                 channels: int = 3, size: int = 8) -> Path:
    """An npz shaped like `evaluation.save_result`'s export, with random pixels and labels."""
    rng = np.random.default_rng(seed)
    robust = np.zeros(n_evaluated, dtype=bool)
    robust[:n_correct] = True
    clean = robust.copy()
    clean[n_correct : n_correct + n_fooled] = True
    index = np.arange(n_correct, n_correct + n_fooled)
    y = rng.integers(0, len(CLASSES), n_fooled)
    np.savez_compressed(
        path, robust_flags=robust, clean_flags=clean, index=index, y=y, y_adv=(y + 1) % len(CLASSES),
        x_adv=rng.random((n_fooled, channels, size, size)).astype(np.float32),
        x_clean=rng.random((n_fooled, channels, size, size)).astype(np.float32),
    )  # fmt: skip
    return path


def write_run(run_dir: Path, dataset: str = "cifar10", **kwargs: object) -> Path:
    """A run directory holding only what study creation reads: config.json and one evaluation export."""
    (run_dir / "evaluations").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"data": {"dataset": dataset}}))
    write_export(run_dir / "evaluations" / "autoattack-standard-linf-eps0.03137-n40-best.npz", **kwargs)  # type: ignore[arg-type]
    return run_dir


@pytest.fixture
def study(tmp_path: Path) -> Study:
    """12 fooled images of 40 evaluated (25 robust-correct, 3 wrong before the attack), batches of 4."""
    export = write_export(tmp_path / "export.npz")
    return create_study(export, tmp_path / "study", CLASSES, batch_size=4, shuffle_seed=None)


@pytest.fixture
def quiz_study(tmp_path: Path) -> Study:
    """The same 12-image study (40 evaluated, batches of 4) plus a 4-image quiz pool set aside at creation."""
    export = write_export(tmp_path / "export.npz", n_fooled=16, n_evaluated=44)
    return create_study(export, tmp_path / "study", CLASSES, batch_size=4, shuffle_seed=None, quiz_pool=4)
