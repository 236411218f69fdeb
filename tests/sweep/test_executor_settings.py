"""Each executor's own settings class: today's ``executor:`` blocks still load, a key the chosen executor does not
take is refused naming the keys it does, and a plug-in executor brings its own keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import Field

from robustperf.sweep import EXECUTORS, ExecutorSpec, StudyError, create_executor, run_study, study_from_dict
from robustperf.sweep.executors import (
    Executor,
    ExecutorError,
    ExecutorSettings,
    LocalSettings,
    ManifestSettings,
    RaySettings,
    SchedulerSettings,
    SubmititSettings,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BLOCKS = sorted(p for p in CONFIGS.glob("*.yaml") if "executor" in (yaml.safe_load(p.read_text()) or {}))


def test_every_executor_has_its_own_settings_class() -> None:
    classes = {name: EXECUTORS.get(name).settings_class for name in ("local", "manifest", "slurm", "submitit", "ray")}
    assert classes == {"local": LocalSettings, "manifest": ManifestSettings, "slurm": SchedulerSettings,
                       "submitit": SubmititSettings, "ray": RaySettings}
    assert "partition" not in LocalSettings.model_fields and "submit" not in SchedulerSettings.model_fields
    assert "cluster" in SubmititSettings.model_fields and "timeout_min" not in RaySettings.model_fields


@pytest.mark.parametrize("name", ["local", "manifest", "slurm", "submitit", "ray"])
def test_settings_defaults_are_those_of_the_study_block(name: str) -> None:
    """The block (`ExecutorSpec`) and an executor's settings read the same key the same way."""
    settings = EXECUTORS.get(name).settings_class()
    block = ExecutorSpec()
    for key in settings.model_fields:
        assert getattr(settings, key) == getattr(block, key), key
    for prop in ("ranks_per_node", "world_size", "cpus_per_rank", "mem_per_rank_gb"):
        if hasattr(settings, prop):
            assert getattr(settings, prop) == getattr(block, prop), prop


@pytest.mark.parametrize("path", BLOCKS, ids=lambda p: p.name)
def test_the_shipped_configs_build_their_executor(path: Path) -> None:
    assert BLOCKS, "configs/ has study files with an executor block"
    spec = ExecutorSpec.model_validate(yaml.safe_load(path.read_text())["executor"])
    ex = create_executor(spec.name, spec)
    for key, value in spec.model_dump(exclude_unset=True).items():
        if key != "name":
            assert getattr(ex.settings, key) == value


def test_a_key_the_chosen_executor_does_not_take_is_refused_with_its_keys() -> None:
    with pytest.raises(ExecutorError) as err:
        create_executor("local", ExecutorSpec(name="local", workers=2, partition="gpu"))
    message = str(err.value)
    assert "'partition'" in message and "not a key of this executor" in message
    assert "name, cpus_per_run, gpus_per_run, max_retries, workers" in message
    with pytest.raises(ExecutorError, match="the ray executor takes: name, cpus_per_gpu, cpus_per_run, gpus_per_run"):
        create_executor("ray", ExecutorSpec(name="ray", timeout_min=5))
    with pytest.raises(ExecutorError, match="'workers'"):  # sbatch runs the tasks: no local workers
        create_executor("slurm", ExecutorSpec(name="slurm", workers=4))


def test_a_study_with_a_wrong_executor_key_stops_before_anything_runs(tmp_path: Path) -> None:
    study = study_from_dict({"name": "wrongkey", "base": {"model": {"name": "tiny_cnn"}},
                             "executor": {"name": "local", "gpus_per_run": 0, "timeout_min": 60}})
    with pytest.raises(StudyError, match=r"study 'wrongkey', executor 'local': 'timeout_min' not a key") as err:
        run_study(study, tmp_path)
    assert "workers" in str(err.value)
    assert not (tmp_path / "studies").exists()
    planned = run_study(study, tmp_path, plan=True)  # the manifest executor does take timeout_min
    assert "--time=01:00:00" in (planned.manifest_path.parent / "submit.sbatch").read_text()


def test_a_block_written_for_another_executor_gives_each_its_keys() -> None:
    cluster = ExecutorSpec(name="slurm", partition="gpu", timeout_min=30, gpus_per_run=0)
    local = create_executor("local", cluster, workers=1)  # --executor local on a cluster study
    assert local.settings == LocalSettings(workers=1, gpus_per_run=0)
    planned = create_executor("manifest", cluster, submit=False)  # --plan
    assert planned.settings.partition == "gpu" and planned.settings.timeout_min == 30 and not planned.settings.submit
    with pytest.raises(ExecutorError, match="'wrokers' a key of no executor"):  # a typo is a typo for every one
        create_executor("manifest", ExecutorSpec(name="local", wrokers=2))


class QueueSettings(ExecutorSettings):
    queue_depth: int = Field(3, ge=1)


class QueueExecutor(Executor):
    """A plug-in: its class, its settings and one registration line."""

    name = "queue_test"
    settings_class = QueueSettings


def test_a_plugin_executor_reads_its_own_keys_from_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(EXECUTORS._items, "queue_test", QueueExecutor)
    study = study_from_dict({"name": "plug", "executor": {"name": "queue_test", "queue_depth": 7, "gpus_per_run": 0}})
    ex = create_executor(study.executor.name, study.executor)
    assert isinstance(ex.settings, QueueSettings) and ex.settings.queue_depth == 7
    with pytest.raises(ExecutorError, match="queue_depth"):
        create_executor("queue_test", ExecutorSpec(name="queue_test", queue_depth=0))
    with pytest.raises(ExecutorError, match="'workers' not a key of this executor"):
        create_executor("queue_test", ExecutorSpec(name="queue_test", workers=2))
