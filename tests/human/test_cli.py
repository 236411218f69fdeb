"""`robustperf human ...`: create -> invite -> label -> score from the command line, and its one-line errors."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from tests.human.conftest import write_run
from tests.human.test_machine import FakeAPI
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.human.db import StudyDB
from robustperf.human.study import load_study

runner = CliRunner()


def flat(text: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(text.split())
REPO = Path(__file__).resolve().parents[2]


def test_create_invite_label_score(tmp_path: Path, monkeypatch) -> None:
    run = write_run(tmp_path / "runs" / "r1", dataset="cifar10")
    out = tmp_path / "study"
    r = runner.invoke(app, ["human", "create", str(run), str(out), "--batch-size", "5"])
    assert r.exit_code == 0, r.output
    assert "12 images in 3 batches" in flat(r.output)
    r = runner.invoke(app, ["human", "invite", str(out), "alice", "--base-url", "http://lab:8000"])
    assert r.exit_code == 0, r.output
    token = re.search(r"http://lab:8000/l/(\S+)", r.output).group(1)
    study = load_study(out)
    db = StudyDB(study)
    alice = db.labeller_by_token(token)
    assert alice is not None and alice.name == "alice"
    for im in study.images:  # alice gets every adversarial image right with high confidence
        db.record_answer(alice, im.id, "adv", im.label, "high")
    answers = {hashlib.sha256(study.image_path(im.id, "adv").read_bytes()).hexdigest(): "cat, low"
               for im in study.images}  # fmt: skip
    monkeypatch.setenv("RP_KEY", "k")
    with FakeAPI(answers) as api:
        r = runner.invoke(app, ["human", "label", str(out), "--name", "gpt", "--endpoint", api.url, "--model", "m",
                                "--key-env", "RP_KEY"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "12 answers stored" in flat(r.output)
    r = runner.invoke(app, ["human", "score", str(out)])
    assert r.exit_code == 0, r.output
    score = json.loads((out / "score.json").read_text())
    assert score["counts"]["valid"] == 12  # one human right with high confidence makes every image valid
    assert score["table4"]["model_all"] == pytest.approx(25 / 40)
    assert score["table4"]["with_average_all"] == pytest.approx((25 + 12) / 40)  # alice: 12/12
    assert "Table 4: model 62.50% (all) 62.50% (valid)" in flat(r.output)
    html = (out / "report.html").read_text()
    assert "Human study" in html and html.count("data:image/png;base64") >= 2 * 8 + 1  # examples + Figure 8
    assert (out / "figure8.png").stat().st_size > 1000


def test_errors_are_one_line(tmp_path: Path) -> None:
    r = runner.invoke(app, ["human", "create", str(tmp_path), str(tmp_path / "s")])
    assert r.exit_code == 2 and "not a run directory" in flat(r.output)
    r = runner.invoke(app, ["human", "invite", str(tmp_path), "x"])
    assert r.exit_code == 2 and "not a study directory" in flat(r.output)
    run = write_run(tmp_path / "r")
    runner.invoke(app, ["human", "create", str(run), str(tmp_path / "s")])
    r = runner.invoke(app, ["human", "label", str(tmp_path / "s"), "--name", "m"])
    assert r.exit_code == 2 and "--endpoint" in flat(r.output)
    r = runner.invoke(app, ["human", "invite", str(tmp_path / "s"), "bad/name"])
    assert r.exit_code == 2 and "labeller name" in flat(r.output)
    r = runner.invoke(app, ["human", "invite", str(tmp_path / "s"), "bob", "--batches", "x"])
    assert r.exit_code == 2 and "--batches" in flat(r.output)


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path: Path) -> None:
    """The README's three commands on the digits quickstart: train, evaluate, create a study, label, score."""
    runs = tmp_path / "runs"
    r = runner.invoke(app, ["train", str(REPO / "configs" / "quickstart.yaml"), "--runs-dir", str(runs)])
    assert r.exit_code == 0, r.output
    run = next(runs.glob("quickstart-*"))
    r = runner.invoke(app, ["evaluate", str(run), "--n-examples", "360", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["human", "create", str(run), str(tmp_path / "study"), "--invite", "alice,bob"])
    assert r.exit_code == 0, r.output
    assert flat(r.output).count("http://127.0.0.1:8000/l/") == 2
    r = runner.invoke(app, ["human", "label", str(tmp_path / "study"), "--name", "self", "--run", str(run)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["human", "score", str(tmp_path / "study")])
    assert r.exit_code == 0, r.output
    score = json.loads((tmp_path / "study" / "score.json").read_text())
    # the attacked model itself, shown the stored 8-bit PNGs, still gets every adversarial image wrong
    assert score["labellers"][0]["adv_any"]["acc"] == 0.0


def test_create_can_invite_right_away(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r")
    r = runner.invoke(app, ["human", "create", str(run), str(tmp_path / "s"), "--invite", "alice,bob",
                            "--base-url", "https://lab.example/"])  # fmt: skip
    assert r.exit_code == 0, r.output
    tokens = re.findall(r"https://lab.example/l/(\S+)", flat(r.output))
    db = StudyDB(load_study(tmp_path / "s"))
    assert [db.labeller_by_token(t).name for t in tokens] == ["alice", "bob"]


def test_report_section_for_the_run_report(tmp_path: Path) -> None:
    from robustperf.human.report import study_section_from_dir

    run = write_run(tmp_path / "r")
    runner.invoke(app, ["human", "create", str(run), str(tmp_path / "s")])
    study = load_study(tmp_path / "s")
    db = StudyDB(study)
    gpt = db.machine_labeller("gpt")
    for k, im in enumerate(study.images):  # right on the first 5, the model's class on the rest
        db.record_answer(gpt, im.id, "adv", im.label if k < 5 else im.model_pred, "high")
    section = study_section_from_dir(tmp_path / "s")
    assert section.startswith("<section id='human-study'>") and section.endswith("</section>")
    assert "valid <b>0</b>, invalid <b>12</b> (deceptive 0, ambiguous 12)" in section  # 1 machine < 2 correct
    assert section.count('<img alt="adv"') == 8  # up to 8 examples for the one non-empty category


def test_the_run_report_embeds_a_scored_human_study(tmp_path: Path) -> None:
    """`robustperf report RUNS --human STUDY`: the study's section (counts, Table 4, examples) in report.html."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
    import planted_runs

    runs = tmp_path / "runs"
    planted_runs.write_planted_runs(runs, widths=(4, 8, 16), n_trains=(300, 600, 1200), failed=0)
    run = write_run(tmp_path / "r")
    assert runner.invoke(app, ["human", "create", str(run), str(tmp_path / "s")]).exit_code == 0
    study = load_study(tmp_path / "s")
    db = StudyDB(study)
    gpt = db.machine_labeller("gpt")
    for im in study.images:
        db.record_answer(gpt, im.id, "adv", im.label, "high")
    db.close()
    r = runner.invoke(app, ["report", str(runs), "--out", str(tmp_path / "rep"), "--bootstrap", "0",
                            "--human", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<h2>Human-alignment study</h2>" in page and "<section id='human-study'>" in page
    assert page.index("<section id='human-study'>") < page.index("</body>")
    bad = runner.invoke(app, ["report", str(runs), "--out", str(tmp_path / "rep2"), "--bootstrap", "0",
                              "--human", str(tmp_path)])
    assert bad.exit_code != 0 and "not a human study directory" in bad.output
