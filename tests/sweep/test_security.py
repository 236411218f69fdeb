"""Names are data: traversal names refused before anything is written, scheduler scripts quote every value
(checked with ``bash -n``), and `run-one` calls only registered entry points."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.names import UnsafeNameError, check_name, path_under
from robustperf.sweep import ExecutorSpec, run_study, study_from_dict
from robustperf.sweep.launch import python_lines
from robustperf.sweep.manifest import (
    ManifestError,
    bsub_script,
    qsub_script,
    resolve_fn,
    sbatch_script,
    write_manifest,
    write_scheduler_scripts,
)

HOSTILE = ["../x", "../../x", "/tmp/abs", "a/b", "a\x00b", "a\nb", "line\n#SBATCH --wrap=rm", ".hidden", "..",
           "", "a b", "it's", 'say "hi"', "x" * 101, "$(touch pwned)", "`id`", "a;b"]


@pytest.mark.parametrize("name", HOSTILE, ids=[repr(n)[:30] for n in HOSTILE])
def test_hostile_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeNameError, match="letters, digits"):
        check_name(name, "study name")
    with pytest.raises(ValueError, match="not a safe study name|at least 1 character"):
        study_from_dict({"name": name})


@pytest.mark.parametrize("name", ["quickstart", "cifar10-trades_wrn28.10", "A1", "x" * 100])
def test_safe_names_pass(name: str) -> None:
    assert check_name(name) == name and study_from_dict({"name": name}).name == name


def test_paths_stay_under_their_root(tmp_path: Path) -> None:
    assert path_under(tmp_path, "studies", "s.json") == (tmp_path / "studies" / "s.json").resolve()
    for parts in (("..", "x"), ("studies", "../../x"), ("/etc/passwd",), ("a\x00",)):
        with pytest.raises(UnsafeNameError):
            path_under(tmp_path, *parts)
    (tmp_path / "link").symlink_to(tmp_path.parent)  # a symbolic link out of the root is followed and refused
    with pytest.raises(UnsafeNameError, match="leads outside"):
        path_under(tmp_path, "link", "x")


@pytest.mark.parametrize("name", ["../../escape", "/tmp/escape-abs", "a\nb"])
def test_a_study_with_a_traversal_name_writes_nothing(tmp_path: Path, name: str) -> None:
    runs = tmp_path / "deep" / "runs"
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"name": name, "base": {"model": {"name": "tiny_cnn"}}}))
    out = CliRunner().invoke(app, ["study", str(study), "--runs-dir", str(runs), "--plan"])
    assert out.exit_code == 2 and "not a safe study name" in out.output
    assert not runs.exists() and sorted(p.name for p in tmp_path.rglob("*")) == ["study.yaml"]
    assert not Path("/tmp/escape-abs.json").exists()


def test_the_api_refuses_an_unsafe_name_too(tmp_path: Path) -> None:
    study = study_from_dict({"name": "ok", "base": {"model": {"name": "tiny_cnn"}}})
    bad = study.model_construct(**{**study.__dict__, "name": "../../x"})  # skipping validation, as a caller might
    with pytest.raises(UnsafeNameError):
        run_study(bad, tmp_path / "runs", plan=True)
    assert not (tmp_path / "runs").exists()


NASTY_JOB = """my study's "run" $(id) `x`"""
NASTY_DIR = "dir with 'quotes' and spaces"


@pytest.mark.parametrize("build", [sbatch_script, bsub_script, qsub_script])
def test_scheduler_scripts_quote_every_value_and_pass_bash_n(tmp_path: Path, build) -> None:
    manifest = tmp_path / NASTY_DIR / "manifest.jsonl"
    spec = ExecutorSpec(name="manifest", partition="gpu queue", scheduler_args=("--account=a b", "-nnodes 1"))
    script = build(manifest, 4, spec, NASTY_JOB)
    path = tmp_path / "submit.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    quoted = shlex.quote(NASTY_JOB)
    assert quoted in script or shlex.quote(f"{NASTY_JOB}[1-4]%64") in script
    lines = script.splitlines()
    fixed = {*python_lines(), 'IDX=$((LSB_JOBINDEX - 1))', 'IDX=${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-0}}',
             'cd "${PBS_O_WORKDIR:-.}"'}  # the interpreter is resolved when the task runs; nothing of the spec in them
    assert all(line.startswith("#") or not line or line.startswith("exec ") or line in fixed for line in lines)
    assert f'PY="${{PY:-{shlex.quote(sys.executable)}}}"' in lines
    for line in lines:  # the name appears only inside single quotes
        if "study" in line:
            assert "'my study'" in line and "\"'\"'s" in line
    assert shlex.quote(str(manifest)) in script and shlex.quote("gpu queue") in script
    # each shell word of the exec line is what was meant: python, -m, robustperf, run-one, --manifest, path
    exec_words = shlex.split(lines[-1])
    assert exec_words[0] == "exec" and exec_words[1] == "$PY"
    assert exec_words[2:6] == ["-m", "robustperf", "run-one", "--manifest"] and exec_words[6] == str(manifest)
    assert exec_words[7:] in ([], ["--index", "$IDX"])


@pytest.mark.parametrize("field", ["partition", "scheduler_args"])
def test_a_line_break_in_a_scheduler_value_is_refused(tmp_path: Path, field: str) -> None:
    value: object = "gpu\n#SBATCH --wrap=evil" if field == "partition" else ("--x\nrm -rf /",)
    spec = ExecutorSpec(name="manifest", **{field: value})
    with pytest.raises(ManifestError, match="line break"):
        sbatch_script(tmp_path / "manifest.jsonl", 2, spec, "ok")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_written_scripts_of_a_planned_study_pass_bash_n(tmp_path: Path) -> None:
    runs = tmp_path / "runs with space"
    study = study_from_dict({"name": "plan-1", "base": {"model": {"name": "tiny_cnn"}},
                             "grid": {"model.kwargs.width": [2, 3]}})
    result = run_study(study, runs, plan=True)
    assert result.manifest_path is not None
    for kind in ("sbatch", "bsub", "qsub"):
        script = result.manifest_path.parent / f"submit.{kind}"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
        assert shlex.quote(str(result.manifest_path)) in script.read_text()


def test_run_one_refuses_a_manifest_naming_an_arbitrary_function(tmp_path: Path) -> None:
    from robustperf.sweep.run import run_one

    manifest = tmp_path / "manifest.jsonl"
    write_manifest(manifest, run_one, [{"model": {"name": "tiny_cnn"}}], tmp_path)
    entry = json.loads(manifest.read_text())
    marker = tmp_path / "pwned"
    for fn, kwargs in (("os:system", {}), ("subprocess:run", {}), ("builtins:exec", {}), ("shutil:rmtree", {})):
        entry.update(fn=fn, fn_kwargs=kwargs, config=f"touch {marker}")
        manifest.write_text(json.dumps(entry) + "\n")
        out = subprocess.run([sys.executable, "-m", "robustperf", "run-one", "--manifest", str(manifest), "--index",
                              "0"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "400"})
        assert out.returncode == 2, out.stderr
        assert f"manifest function '{fn}' is not a registered run entry point" in " ".join(out.stderr.split())
        assert not marker.exists()
    with pytest.raises(ManifestError):
        resolve_fn("os:system")
    assert resolve_fn("robustperf.sweep.run:run_one") is run_one


def test_planning_with_an_unregistered_function_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a registered run entry point"):
        write_manifest(tmp_path / "m.jsonl", os.getcwd, [{}], tmp_path)
    assert not (tmp_path / "m.jsonl").exists()


def test_scripts_are_written_for_a_manifest_with_spaces_in_its_path(tmp_path: Path) -> None:
    from robustperf.sweep.run import run_one

    manifest = write_manifest(tmp_path / "a b" / "manifest.jsonl", run_one, [{"model": {"name": "tiny_cnn"}}],
                              tmp_path)
    scripts = write_scheduler_scripts(manifest, ExecutorSpec(name="manifest"), job_name="ok")
    for path in scripts.values():
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
