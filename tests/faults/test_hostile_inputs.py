"""Hostile inputs, well-formed but crafted: data pickles that name code, planted links, wrong-shaped records.

Each test plants one and asserts the outcome the issue-28 table names: nothing runs, no file outside the
run is touched, one run is named `corrupt` while the rest of the directory keeps working.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.config import DataConfig
from robustperf.data.datasets import DataError
from robustperf.data.safe_pickle import UnsafePickleError, load_data_pickle, loads_data_pickle

runner = CliRunner()


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (os.system, (f"touch {self.marker}",))


def _plant_cifar(root: Path, batch: object) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / name).write_bytes(pickle.dumps(batch, protocol=2))
    return d


@pytest.mark.parametrize("protocol", [2, 5])
def test_data_pickle_keeps_plain_data_and_numpy_arrays(tmp_path: Path, protocol: int) -> None:
    data = {b"data": np.arange(24, dtype=np.uint8).reshape(2, 12), b"labels": [3, 7], b"batch_label": b"x",
            b"filenames": [b"a.png", b"b.png"], "f": np.ones(3, dtype=np.float32), "t": (1, 2.5, None),
            "s": np.int64(5)}
    (tmp_path / "b").write_bytes(pickle.dumps(data, protocol=protocol))
    back = load_data_pickle(tmp_path / "b")
    assert back[b"labels"] == [3, 7] and back[b"filenames"] == [b"a.png", b"b.png"] and back["t"] == (1, 2.5, None)
    assert back["s"] == 5
    np.testing.assert_array_equal(back[b"data"], data[b"data"])
    np.testing.assert_array_equal(back["f"], data["f"])


def test_object_arrays_and_arbitrary_callables_are_refused() -> None:
    with pytest.raises(UnsafePickleError, match="object dtype"):
        loads_data_pickle(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2))
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        loads_data_pickle(b"cbuiltins\neval\n(S'1'\ntR.")


def test_crafted_cifar_pickle_never_runs_its_command(tmp_path: Path) -> None:
    from robustperf.data.sources import load_cifar10

    marker = tmp_path / "marker"
    d = _plant_cifar(tmp_path / "root", {b"data": _Payload(marker), b"labels": [0]})
    with pytest.raises(DataError) as err:
        load_cifar10(DataConfig(dataset="cifar10", root=str(tmp_path / "root")))
    message = str(err.value)
    assert "\n" not in message and str(d / "data_batch_1") in message and "posix.system" in message
    assert not marker.exists()
    # through the CLI too: one error line, the marker never created
    out = runner.invoke(app, ["data", "info", "cifar10", "--set", f"data.root={tmp_path / 'root'}"],
                        terminal_width=400)
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert out.exit_code != 0 and len(lines) == 1 and "not a plain data pickle" in lines[0], out.output
    assert not marker.exists()


def test_official_layout_cifar_still_loads(tmp_path: Path) -> None:
    from robustperf.data.sources import load_cifar10

    rows = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    _plant_cifar(tmp_path, {b"batch_label": b"training batch", b"labels": [1, 2], b"data": rows,
                            b"filenames": [b"a", b"b"]})
    source = load_cifar10(DataConfig(dataset="cifar10", root=str(tmp_path)))
    assert len(source.train) == 10


def _planned(tmp_path: Path) -> tuple[Path, dict]:
    import json

    from robustperf.sweep.manifest import write_manifest
    from robustperf.sweep.run import run_one

    runs = tmp_path / "runs"
    manifest = write_manifest(runs / "manifests" / "s" / "manifest.jsonl", run_one,
                              [{"model": {"name": "tiny_cnn"}}], runs)
    return manifest, json.loads(manifest.read_text())


def _rewrite(manifest: Path, entry: dict, *, redigest: bool) -> None:
    import hashlib
    import json

    from robustperf.sweep.manifest import digest_path

    manifest.write_text(json.dumps(entry) + "\n")
    if redigest:  # a writer who also recomputes the digest still meets the checks after it
        digest_path(manifest).write_text(hashlib.sha256(manifest.read_bytes()).hexdigest() + "\n")


@pytest.mark.parametrize(("change", "redigest", "words"), [
    ({"config": {"model": {"name": "tiny_cnn"}, "optim": {"epochs": 2}}}, False, "does not match the digest"),
    ({"runs_dir": "/tmp"}, True, "is not the runs directory holding the manifest"),
    ({"fn_kwargs": {"evaluatee": None}}, True, "fn_kwargs ['evaluatee'] are not keyword arguments"),
    ({"fn_kwargs": {"runs_dir": "/tmp"}}, True, "fn_kwargs ['runs_dir'] are not keyword arguments"),
    ({"config": {"model": {"name": "tiny_cnn"}, "method": {"attack": {"eps": 8}}}}, True, "eps=8 is outside"),
    ({"config": {"model": {"name": "tiny_cnm"}}}, True, "unknown model 'tiny_cnm'"),
    ({"config": ["not", "a", "config"]}, True, "config must be a mapping"),
], ids=["edited", "runs-dir-elsewhere", "unknown-kwarg", "kwarg-runs-dir", "bad-eps", "bad-model", "list-config"])
def test_run_one_refuses_an_edited_manifest_before_running(tmp_path: Path, change: dict, redigest: bool,
                                                          words: str) -> None:
    manifest, entry = _planned(tmp_path)
    _rewrite(manifest, {**entry, **change}, redigest=redigest)
    out = runner.invoke(app, ["run-one", "--manifest", str(manifest), "--index", "0"], terminal_width=600)
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert out.exit_code == 2 and len(lines) == 1 and words in lines[0], out.output
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name != "manifests"], "a run directory was created"


def test_a_manifest_without_its_digest_is_refused(tmp_path: Path) -> None:
    from robustperf.sweep.manifest import ManifestError, digest_path, run_manifest_index

    manifest, _ = _planned(tmp_path)
    digest_path(manifest).unlink()
    with pytest.raises(ManifestError, match="has no digest beside it"):
        run_manifest_index(manifest, 0)


def test_a_plan_beyond_the_array_limit_is_split_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import re
    import subprocess

    from robustperf.sweep import ExecutorSpec
    from robustperf.sweep.manifest import OFFSET_ENV, array_index_from_env, write_manifest, write_scheduler_scripts
    from robustperf.sweep.run import run_one

    configs = [{"model": {"name": "tiny_cnn", "kwargs": {"width": 2}}, "runtime": {"seed": i}} for i in range(2500)]
    manifest = write_manifest(tmp_path / "manifests" / "big" / "manifest.jsonl", run_one, configs, tmp_path)
    with caplog.at_level(logging.WARNING):
        write_scheduler_scripts(manifest, ExecutorSpec(name="manifest"), job_name="big")
    folder = manifest.parent
    arrays = {p.name: re.search(r"--array=(\S+)", p.read_text()).group(1)  # type: ignore[union-attr]
              for p in sorted(folder.glob("submit*.sbatch"))}
    assert arrays == {"submit.sbatch": "0-1000%64", "submit-2.sbatch": "0-1000%64", "submit-3.sbatch": "0-497%64"}
    assert f"export {OFFSET_ENV}=2002" in (folder / "submit-3.sbatch").read_text()
    assert f"{OFFSET_ENV}" not in (folder / "submit.sbatch").read_text()
    assert sorted(p.name for p in folder.glob("submit*.bsub")) == ["submit-2.bsub", "submit-3.bsub", "submit.bsub"]
    assert [p.name for p in folder.glob("submit*.qsub")] == ["submit.qsub"]  # PBS Pro takes 10000
    assert "2500 runs exceed the default array limit of Slurm (MaxArraySize) (1001 tasks): wrote 3 scripts" in caplog.text
    for script in folder.glob("submit*.*"):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    # every manifest index is reached exactly once across the parts
    reached = [array_index_from_env({"SLURM_ARRAY_TASK_ID": str(i), OFFSET_ENV: str(off)})
               for off, count in ((0, 1001), (1001, 1001), (2002, 498)) for i in range(count)]
    assert reached == list(range(2500))
    lsf = [array_index_from_env({"LSB_JOBINDEX": str(i), OFFSET_ENV: str(off)})
           for off, count in ((0, 1000), (1000, 1000), (2000, 500)) for i in range(1, count + 1)]
    assert lsf == list(range(2500))
