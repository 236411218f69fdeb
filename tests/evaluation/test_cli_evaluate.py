"""`robustperf evaluate RUN_DIR`: results land in evaluations/ and in result.json's `evaluations`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robustperf.cli.evaluate import evaluation_name, parse_eps


def test_parse_eps_and_name() -> None:
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps("0.1") == 0.1
    with pytest.raises(ValueError, match="8/255"):
        parse_eps("eight")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        parse_eps("8")
    assert evaluation_name("autoattack", "standard", "linf", 8 / 255, 1000, "best") == (
        "autoattack-standard-linf-eps0.03137-n1000-best"
    )
    assert evaluation_name("pgd", "standard", "l2", 0.5, 10, "last") == "pgd-l2-eps0.5-n10-last"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = pytest.importorskip("robustperf.data")
    if not hasattr(data, "build_data") or not hasattr(data, "eval_tensors"):
        pytest.skip("robustperf.data is not complete yet")
    from robustperf.config import load_config
    from robustperf.training import train

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "configs" / "quickstart.yaml", ["optim.epochs=1", "optim.warmup_epochs=0",
                                                               "eval.n_examples=64"])  # fmt: skip
    rd = train(cfg, tmp_path_factory.mktemp("runs"))
    return Path(rd.path)


def test_cli_evaluate_writes_into_the_run(trained_run: Path) -> None:
    from typer.testing import CliRunner

    from robustperf.cli.app import app
    from robustperf.store import RunDir

    runner = CliRunner()
    args = ["evaluate", str(trained_run), "--attack", "pgd", "--n-examples", "60", "--device", "cpu", "--eps", "0.1"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    name = "pgd-linf-eps0.1-n60-best"
    summary = json.loads((trained_run / "evaluations" / f"{name}.json").read_text())
    npz = np.load(trained_run / "evaluations" / f"{name}.npz")
    assert npz["robust_flags"].shape == (60,) and summary["robust_acc"] == pytest.approx(npz["robust_flags"].mean())
    record = RunDir(trained_run).read_record()
    assert record is not None and record.evaluations[name]["robust_acc"] == summary["robust_acc"]
    assert record.status == "finished"  # the merge keeps the rest of the record
    missing = runner.invoke(app, ["evaluate", str(trained_run / "nope")])
    assert missing.exit_code != 0 and "not a run directory" in " ".join(missing.output.split())


def test_cli_evaluate_nproc_2_gives_the_one_process_verdicts(trained_run: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from robustperf.cli.app import app

    args = ["evaluate", str(trained_run), "--attack", "apgd-ce", "--n-examples", "64", "--device", "cpu", "--eps",
            "0.1", "--batch-size", "16"]
    runner = CliRunner()
    flags = {}
    for nproc in ("1", "2"):
        shutil.rmtree(trained_run / "evaluations", ignore_errors=True)  # no state to resume from: attack afresh
        out = runner.invoke(app, [*args, "--nproc", nproc])
        assert out.exit_code == 0, out.output
        stem = next(p.stem for p in (trained_run / "evaluations").glob("apgd-ce*.json"))
        flags[nproc] = dict(np.load(trained_run / "evaluations" / f"{stem}.npz"))
        summary = json.loads((trained_run / "evaluations" / f"{stem}.json").read_text())
        assert "robust" in out.output and summary["n_examples"] == 64, out.output
    assert flags["1"]["robust_flags"].mean() < flags["1"]["clean_flags"].mean()  # some points fooled
    for key in flags["1"]:
        assert np.array_equal(flags["1"][key], flags["2"][key]), key


def test_evaluate_run_defaults_to_the_runs_threat_model_and_records_its_entry(trained_run: Path) -> None:
    """The one `evaluate_run` the CLI and the study use: the run's own eps/norm unless given, the entry the
    caller describes written under its key, the state under ``<key><state_suffix>``."""
    from robustperf.evaluation.run import evaluate_run, evaluation_name
    from robustperf.store import RunDir

    ev = evaluate_run(trained_run, attack="pgd", which="last", n_examples=24, device="cpu", state_suffix="_s",
                      entry=lambda e: {"robust_acc": e.result.robust_acc, "n": int(len(e.y))}, batch_size=24)
    eps, norm = float(ev.config.method.attack.eps), ev.config.method.attack.norm
    assert ev.key == evaluation_name("pgd", "standard", norm, eps, 24, "last") and ev.result.eps == eps
    assert (trained_run / "evaluations" / f"{ev.key}_s").is_dir() and not ev.files
    record = RunDir(trained_run).read_record()
    assert record.evaluations[ev.key] == {"robust_acc": ev.result.robust_acc, "n": 24} == ev.summary
    study = evaluate_run(trained_run, attack="pgd", which="last", n_examples=24, device="cpu", key="study-x",
                         eps=0.05, save_files=True, batch_size=24)
    assert study.result.eps == 0.05 and study.files == ["study-x.json", "study-x.npz"]
    assert RunDir(trained_run).read_record().evaluations["study-x"]["eps"] == 0.05
