"""Study creation: PNGs hold the exported pixels, ids are stable, batches and counts are right, bad input is refused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.human.conftest import CLASSES, write_export, write_run

from robustperf.human.study import CIFAR10_CLASSES, StudyError, create_study, create_study_from_run, load_study


def test_study_holds_exported_pixels_ids_and_batches(study, tmp_path: Path) -> None:
    with np.load(tmp_path / "export.npz") as npz:
        x_adv, x_clean, index, y, y_adv = npz["x_adv"], npz["x_clean"], npz["index"], npz["y"], npz["y_adv"]
    assert [im.index for im in study.images] == list(index)  # the index lives in the manifest, not in the id
    assert [len(study.batch(b)) for b in range(study.n_batches)] == [4, 4, 4]
    assert (study.n_evaluated, study.n_model_correct, study.n_clean_wrong) == (40, 25, 3)
    for k, im in enumerate(study.images):
        assert (im.label, im.model_pred) == (y[k], y_adv[k])
        for version, x in (("adv", x_adv), ("clean", x_clean)):
            path = study.image_path(im.id, version)
            assert path is not None
            stored = np.asarray(Image.open(io.BytesIO(path.read_bytes()))).transpose(2, 0, 1)
            assert stored.shape == (3, 8, 8)  # native resolution: display upscaling happens in the browser
            np.testing.assert_array_equal(stored, np.rint(x[k] * 255).astype(np.uint8))
    assert study.display_scale == 32  # 8 px shown at 256 px
    assert load_study(study.root) == study


def test_image_path_takes_ids_only(study) -> None:
    good = study.images[0].id
    assert study.image_path(good, "adv") is not None
    for bad in ("../manifest", "/etc/passwd", f"{good}/../../manifest.json", "img99999", good + ".png", ""):
        assert study.image_path(bad, "adv") is None
    assert study.image_path(good, "../adv") is None


def test_shuffled_order_is_seeded_and_ids_stay(tmp_path: Path) -> None:
    export = write_export(tmp_path / "e.npz")
    a = create_study(export, tmp_path / "a", CLASSES, batch_size=5, shuffle_seed=1)
    b = create_study(export, tmp_path / "b", CLASSES, batch_size=5, shuffle_seed=1)
    assert [(im.index, im.batch) for im in a.images] == [(im.index, im.batch) for im in b.images]
    assert sorted(im.index for im in a.images) == list(range(25, 37))
    assert not {im.id for im in a.images} & {im.id for im in b.images}  # ids are random, not derived
    assert [len(a.batch(k)) for k in range(a.n_batches)] == [5, 5, 2]


def test_bad_input_is_refused_before_writing(tmp_path: Path) -> None:
    export = write_export(tmp_path / "e.npz")
    with pytest.raises(StudyError, match="robustperf evaluate"):
        create_study(tmp_path / "missing.npz", tmp_path / "s", CLASSES)
    with pytest.raises(StudyError, match="--classes"):
        create_study(export, tmp_path / "s", ("only", "two"))
    with pytest.raises(StudyError, match="batch_size"):
        create_study(export, tmp_path / "s", CLASSES, batch_size=0)
    assert not (tmp_path / "s").exists()
    create_study(export, tmp_path / "s", CLASSES)
    with pytest.raises(StudyError, match="already holds a study"):
        create_study(export, tmp_path / "s", CLASSES)
    with pytest.raises(StudyError, match="not a study directory"):
        load_study(tmp_path)


def test_from_run_finds_export_and_class_names(tmp_path: Path) -> None:
    run = write_run(tmp_path / "runs" / "r1", dataset="cifar10")
    study = create_study_from_run(run, tmp_path / "study", batch_size=100)
    assert study.classes == CIFAR10_CLASSES
    assert study.n_batches == 1
    manifest = json.loads((study.root / "manifest.json").read_text())
    assert manifest["source"]["run_id"] == "r1"
    assert manifest["source"]["evaluation"] == "autoattack-standard-linf-eps0.03137-n40-best"
    (tmp_path / "empty" / "evaluations").mkdir(parents=True)
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(StudyError, match="robustperf evaluate"):
        create_study_from_run(tmp_path / "empty", tmp_path / "s2")
