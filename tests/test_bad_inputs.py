"""Every bad input stops before work starts, in one line that names the key or path and the fix.

Each case runs the real CLI and asserts its exit code, a single ``error:`` line holding the expected
words, and that nothing was trained or written under the runs directory.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from robustperf.cli.app import app

TINY = {"name": "bad", "data": {"dataset": "digits", "n_train": 60, "n_test": 40, "batch_size": 30},
        "model": {"name": "tiny_cnn", "kwargs": {"width": 2}},
        "method": {"attack": {"eps": 0.1, "step_size": 0.05, "n_steps": 1}}, "optim": {"epochs": 1},
        "eval": {"n_examples": 20, "attack": {"n_steps": 1}}, "cost": {"energy_meter": "none"},
        "runtime": {"device": "cpu", "progress": False}}


def _study(**changes: object) -> dict:
    return {"name": "s", "base": TINY, "grid": {"model.kwargs.width": [2]}, "fit": {"bootstrap": 0},
            "executor": {"workers": 1, "gpus_per_run": 0}, **changes}


@dataclass
class Case:
    id: str
    args: list[str]  # {cfg}, {study}, {runs}, {file} are filled in
    files: dict[str, object]  # name -> YAML data (or raw text when a str)
    code: int
    words: tuple[str, ...]
    patch: Callable[[pytest.MonkeyPatch, Path], None] | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _no_space(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    import robustperf.store.io as io

    def full(path: object, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(io, "write_bytes_atomic", full)


def _read_only(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    import robustperf.store.lock as lock

    real = os.open

    def ro(path: object, flags: int, mode: int = 0o777, *a: object, **k: object) -> int:
        if str(path).startswith(str(tmp / "runs")) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, flags, mode, *a, **k)

    monkeypatch.setattr(lock.os, "open", ro)


CASES = [
    Case("empty-yaml", ["train", "{file}", "--runs-dir", "{runs}"], {"file": ""}, 2, ("is empty", "file.yaml")),
    Case("malformed-yaml", ["train", "{file}", "--runs-dir", "{runs}"], {"file": "data:\n  n_train: [1, 2\nx: 1\n"},
         2, ("is not valid YAML at line 3, column 2", "file.yaml")),
    Case("not-a-mapping", ["train", "{file}", "--runs-dir", "{runs}"], {"file": "- 1\n- 2\n"}, 2,
         ("must hold a mapping", "not a list")),
    Case("missing-config", ["train", "{runs}/nope.yaml", "--runs-dir", "{runs}"], {}, 2, ("nope.yaml", "does not exist")),
    Case("eps-8", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "method.attack.eps=8"], {}, 2,
         ("method.attack.eps", "eps=8 is outside the [0, 1] pixel range", "8/255")),
    Case("eps-2.0", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "eval.attack.eps=2.0"], {}, 2,
         ("eval.attack.eps", "eps=2 is outside the [0, 1] pixel range")),
    Case("eps-negative", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "method.attack.eps=-0.1"], {}, 2,
         ("method.attack.eps", "must be >= 0")),
    Case("l2-eps-8", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "method.attack.norm=l2", "--set",
                      "method.attack.eps=8"], {}, 2, ("method.attack.eps", "eps=8 (L2) is larger than any radius")),
    Case("warmup-inf", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "optim.warmup_epochs=.inf"], {}, 2,
         ("optim.warmup_epochs", "finite number")),
    Case("lr-inf", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "optim.lr=.inf"], {}, 2,
         ("optim.lr", "finite number")),
    Case("step-size-inf", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "method.attack.step_size=.inf"], {}, 2,
         ("method.attack.step_size", "finite number")),
    Case("lr-nan", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "optim.lr=.nan"], {}, 2,
         ("optim.lr", "finite number")),
    Case("width-1e6", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "model.kwargs.width=1000000"], {}, 2,
         ("model 'tiny_cnn' (width=1000000) has 18,000,035,000,010 parameters", "lower model.kwargs")),
    Case("list-typo-dir", ["runs", "list", "--runs-dir", "{runs}/typo"], {"runs/.keep": ""}, 2,
         ("typo is not a directory", "nothing was created")),
    Case("reindex-typo-dir", ["runs", "reindex", "--runs-dir", "{runs}/typo"], {"runs/.keep": ""}, 2,
         ("typo is not a directory",)),
    Case("run-traversal-name", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "name=../../x"], {}, 2,
         ("name: '../../x' is not a safe run name", "letters, digits")),
    Case("unknown-key", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "optim.lrr=0.1"], {}, 2,
         ("unknown key 'optim.lrr'",)),
    Case("n-train-beyond-data", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "data.n_train=5000"], {}, 2,
         ("data.n_train=5000 but digits has 1438 training samples",)),
    Case("unknown-model", ["train", "{cfg}", "--runs-dir", "{runs}", "--set", "model.name=tiny_cnnn"], {}, 2,
         ("unknown model 'tiny_cnnn'", "tiny_cnn")),
    Case("runs-dir-is-a-file", ["train", "{cfg}", "--runs-dir", "{cfg}/runs"], {}, 2,
         ("cfg.yaml", "Not a directory", "a part of the path is a file")),
    Case("disk-full", ["train", "{cfg}", "--runs-dir", "{runs}"], {}, 2,
         ("config.json", "No space left on device", "the disk is full"), patch=_no_space),
    Case("read-only", ["train", "{cfg}", "--runs-dir", "{runs}"], {}, 2,
         (".lock", "Read-only file system", "pass a writable directory with --runs-dir"), patch=_read_only),
    Case("study-empty", ["study", "{file}", "--runs-dir", "{runs}"], {"file": ""}, 2, ("study file", "is empty")),
    Case("study-malformed", ["study", "{file}", "--runs-dir", "{runs}"], {"file": "name: s\ngrid: {a: [1\n"}, 2,
         ("study file", "is not valid YAML at line")),
    Case("study-attack-typo", ["study", "{study}", "--runs-dir", "{runs}"],
         {"study": _study(evaluate={"attacks": ["apgd-cee"]})}, 2,
         ("evaluate.attacks", "unknown attack 'apgd-cee'", "apgd-ce")),
    Case("study-model-typo", ["study", "{study}", "--runs-dir", "{runs}"],
         {"study": _study(grid={"model.name": ["tiny_cnn", "tiny_cnm"]})}, 2, ("model.name", "unknown model")),
    Case("study-method-typo", ["study", "{study}", "--runs-dir", "{runs}"],
         {"study": _study(grid={"method.name": ["tradess"]})}, 2, ("method.name", "unknown training method")),
    Case("study-executor-typo", ["study", "{study}", "--runs-dir", "{runs}"],
         {"study": _study(executor={"name": "slurmm"})}, 2, ("executor.name", "unknown executor 'slurmm'")),
    Case("study-executor-flag-typo", ["study", "{study}", "--runs-dir", "{runs}", "--executor", "rayy"],
         {"study": _study()}, 2, ("executor.name", "unknown executor 'rayy'")),
    Case("study-n-train", ["study", "{study}", "--runs-dir", "{runs}"],
         {"study": _study(grid={"data.n_train": [100, 9000]})}, 2, ("data.n_train=9000 but digits has 1438",)),
    Case("study-eps", ["study", "{study}", "--runs-dir", "{runs}"],
         {"study": _study(grid={"method.attack.eps": [8]})}, 2, ("grid point 0", "eps=8 is outside")),
    Case("study-traversal-name", ["study", "{study}", "--runs-dir", "{runs}"], {"study": _study(name="../x")}, 2,
         ("not a safe study name",)),
    Case("damaged-result", ["runs", "show", "r-1", "--runs-dir", "{runs}"],
         {"runs/r-1/config.json": "{}", "runs/r-1/result.json": '{"status": "fini'}, 2,
         ("r-1/result.json is damaged", "line 1 column", "robustperf runs repair --runs-dir")),
    Case("show-traversal", ["runs", "show", "../../etc", "--runs-dir", "{runs}"], {"runs/.keep": ""}, 2,
         ("leads outside",)),
]


def _materialise(tmp_path: Path, case: Case) -> dict[str, str]:
    values = {"runs": str(tmp_path / "runs"), "cfg": str(tmp_path / "cfg.yaml"), "study": str(tmp_path / "study.yaml"),
              "file": str(tmp_path / "file.yaml")}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(TINY))
    for name, data in case.files.items():
        path = tmp_path / (f"{name}.yaml" if name in ("study", "file") else name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return values


def _written(runs: Path) -> list[str]:
    """Everything under the runs directory except what the case itself put there."""
    if not runs.is_dir():
        return []
    return sorted(str(p.relative_to(runs)) for p in runs.rglob("*") if p.is_file() and p.name != ".keep"
                  and not p.parent.name.startswith("r-"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_naming_the_fix_and_nothing_is_written(case: Case, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    values = _materialise(tmp_path, case)
    if case.patch is not None:
        case.patch(monkeypatch, tmp_path)
    args = [a.format(**values) for a in case.args]
    out = CliRunner().invoke(app, args)
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert out.exit_code == case.code, (out.exit_code, out.output, out.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), out.output
    for word in case.words:
        assert word in lines[0], (word, lines[0])
    assert _written(tmp_path / "runs") == [], "something was written"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    out = CliRunner().invoke(app, ["--debug", "train", str(tmp_path / "empty.yaml"), "--runs-dir", str(tmp_path)])
    assert out.exit_code != 0 and type(out.exception).__name__ == "ConfigError"


def _train_beside_a_live_holder(tmp_path: Path, *extra: str) -> tuple[Path, int, object]:
    """`robustperf train` of a run whose lock another live process holds: (run dir, holder PID, CLI result)."""
    import subprocess
    import sys

    from robustperf.config import load_config

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(TINY))
    run = tmp_path / "runs" / load_config(tmp_path / "cfg.yaml").run_id
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom robustperf.store.lock import RunLock\n"
                               "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        out = CliRunner().invoke(app, ["train", str(tmp_path / "cfg.yaml"), "--runs-dir", str(tmp_path / "runs"),
                                       *extra], terminal_width=400)
    finally:
        holder.kill()
        holder.wait()
    return run, holder.pid, out


def test_a_run_held_by_another_process_is_refused(tmp_path: Path) -> None:
    run, pid, out = _train_beside_a_live_holder(tmp_path)
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert out.exit_code == 3 and len(lines) == 1
    assert f"is being trained by PID {pid}" in lines[0] and "use --force after that process is gone" in lines[0]
    assert not (run / "config.json").exists()


def test_force_against_a_live_holder_is_refused(tmp_path: Path) -> None:
    """`--force` used to take the lock from a live holder on this host: both trained, a metrics row doubled."""
    run, pid, out = _train_beside_a_live_holder(tmp_path, "--force")
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert out.exit_code == 3 and len(lines) == 1, out.output
    assert f"--force refused: the holder (PID {pid}" in lines[0] and "is still running" in lines[0]
    assert not (run / "config.json").exists() and not (run / "metrics.jsonl").exists()


@pytest.mark.parametrize("loader", ["run", "study", "llm", "llm_study"])
def test_every_config_loader_shares_the_yaml_checks_and_the_error_formatter(loader: str, tmp_path: Path) -> None:
    """Empty, malformed and misspelled files give the same one-line messages through every loader."""
    from robustperf.config import ConfigError, load_config
    from robustperf.llm.config import load_llm_config
    from robustperf.llm.study import load_study as load_llm_study
    from robustperf.sweep import load_study

    load = {"run": load_config, "study": load_study, "llm": load_llm_config, "llm_study": load_llm_study}[loader]
    path = tmp_path / "x.yaml"
    for text, words in (("", "is empty"), ("a: [1\n", "is not valid YAML at line 2, column 1"),
                        ("- 1\n", "must hold a mapping"), ("name: ok\nbogus_key: 1\n", "unknown key 'bogus_key'")):
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load(path)
        assert words in str(err.value) and "\n" not in str(err.value), (loader, text, str(err.value))


def _alias_bomb() -> str:
    """The classic nested-alias bomb: 9 levels of 9 aliases, 9**9 (387 million) strings once expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", ["alias-bomb", "50MB", "recursive-alias"])
def test_hostile_yaml_is_refused_fast_and_small(kind: str, tmp_path: Path) -> None:
    """Loaded in a fresh process: refused with one line in under 2 s, its peak memory under 200 MB."""
    import subprocess
    import sys
    import time

    path = tmp_path / "hostile.yaml"
    if kind == "alias-bomb":
        path.write_text(_alias_bomb())
        assert len(path.read_bytes()) < 400
    elif kind == "50MB":
        with path.open("w") as f:
            f.write("name: big\nblob:\n")
            line = "  - " + "x" * 96 + "\n"
            for _ in range(50 * 2**20 // len(line)):
                f.write(line)
    else:
        path.write_text("name: loop\ngrid: &g {a: [*g]}\n")
    probe = ("import sys, time\nfrom robustperf.config import ConfigError, load_config\n"
             "t = time.perf_counter()\ntry:\n    load_config(sys.argv[1])\nexcept ConfigError as e:\n"
             "    print('refused', time.perf_counter() - t, str(e).count(chr(10)), e)\n"
             # VmHWM: this process's peak RSS (ru_maxrss would carry the forking parent's over exec)
             "print('maxrss_kb', [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0])\n")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    assert out.returncode == 0, out.stderr
    refused, rss = out.stdout.splitlines()
    words = refused.split(" ", 3)
    assert words[0] == "refused" and float(words[1]) < 2.0 and words[2] == "0", refused
    assert {"alias-bomb": "aliases (*name) are expanded", "50MB": "MiB cap",
            "recursive-alias": "aliases (*name) are expanded"}[kind] in words[3], refused
    assert int(rss.split()[1]) < 200 * 1024, rss
    assert wall < 30  # the whole process, imports included (a loaded machine)


def test_alias_bomb_through_set_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(TINY))
    bomb = "{" + _alias_bomb().replace("\n", ", ").rstrip(", ") + "}"
    out = CliRunner().invoke(app, ["train", str(tmp_path / "cfg.yaml"), "--runs-dir", str(tmp_path / "runs"),
                                   "--set", f"model.kwargs={bomb}"])
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert out.exit_code == 2 and len(lines) == 1 and "aliases (*name) are expanded" in lines[0], out.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_full_disk_mid_training_names_the_path_and_marks_the_run_failed(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The first checkpoint hits ENOSPC (raised by fsync, naming no file); from then on no temp file can be
    written. The error names the checkpoint's path and result.json still says `failed`, not `running`."""
    import json

    from robustperf.config import load_config

    real_fsync = os.fsync
    full = {"on": False}

    def fsync(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        full["on"] = full["on"] or ".last.pt." in name
        if full["on"] and name.endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(TINY))
    run = tmp_path / "runs" / load_config(tmp_path / "cfg.yaml").run_id
    monkeypatch.setattr(os, "fsync", fsync)
    out = CliRunner().invoke(app, ["train", str(tmp_path / "cfg.yaml"), "--runs-dir", str(tmp_path / "runs")],
                             terminal_width=400)
    monkeypatch.setattr(os, "fsync", real_fsync)
    lines = [ln for ln in out.output.splitlines() if ln.startswith("error:")]
    assert out.exit_code == 2 and len(lines) == 1, out.output
    assert "No space left on device" in lines[0] and "unknown path" not in lines[0], lines[0]
    assert "checkpoints" in lines[0] and "last.pt" in lines[0], lines[0]
    record = json.loads((run / "result.json").read_text())
    assert record["status"] == "failed" and "No space left on device" in record["failure_reason"]


def test_runs_list_on_a_read_only_directory_lists_and_reindex_says_why(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    legacy = Path(__file__).parent / "fixtures" / "legacy_run" / "legacy-361d4f03516f"
    shutil.copytree(legacy, tmp_path / "runs" / legacy.name)
    _read_only(monkeypatch, tmp_path)
    out = CliRunner().invoke(app, ["runs", "list", "--runs-dir", str(tmp_path / "runs")], terminal_width=400)
    row = [ln for ln in out.output.splitlines() if "legacy" in ln]  # the run's row, however wide the table
    assert out.exit_code == 0 and len(row) == 1 and "interr" in row[0] and "tiny_cnn" in row[0], out.output
    out = CliRunner().invoke(app, ["runs", "reindex", "--runs-dir", str(tmp_path / "runs")], terminal_width=400)
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert out.exit_code == 2 and len(lines) == 1 and "Read-only file system" in lines[0], out.output
    assert not (tmp_path / "runs" / "index.sqlite").exists()
    out = CliRunner().invoke(app, ["runs", "list", "--runs-dir", str(tmp_path / "typo")])
    assert out.exit_code == 2 and not (tmp_path / "typo").exists()


def test_alias_bomb_as_a_generate_config_is_refused(tmp_path: Path) -> None:
    from robustperf.data.datasets import DataError
    from robustperf.data.generate import load_generate_config

    (tmp_path / "gen.yaml").write_text(_alias_bomb())
    with pytest.raises(DataError, match="aliases"):
        load_generate_config(tmp_path / "gen.yaml")
