"""`robustperf human ...`: the human-alignment study of papers/001 Section 4.

create (study directory from an evaluation export), invite (a labeller's secret link), revoke (end a
link and its sessions), serve (the labelling web app and public quiz), label (a machine labeller: chat endpoint or local model), score
(validity, deceptive/ambiguous, Table 4, Figure 8, report.html).
"""

from __future__ import annotations

from pathlib import Path

import typer

from robustperf.cli.common import console, fail, user_errors

human_app = typer.Typer(help="Human-alignment study: export, labelling web app, validity, valid-only accuracy.",
                        no_args_is_help=True)


def _open(study_dir: Path, db_url: str | None):  # -> (Study, StudyDB)
    from robustperf.human.db import StudyDB
    from robustperf.human.study import load_study

    study = load_study(study_dir)
    return study, StudyDB(study, db_url)


@human_app.command("create")
def create_cmd(
    run_dir: Path = typer.Argument(..., help="run directory with an evaluation (runs/<run_id>)"),
    out: Path = typer.Argument(..., help="study directory to create"),
    evaluation: str | None = typer.Option(None, "--evaluation", help="evaluation name (default: newest AutoAttack)"),
    batch_size: int = typer.Option(100, "--batch-size", min=1, help="images per batch page"),
    classes: str | None = typer.Option(None, "--classes", help="comma-separated class names (default: the data set's)"),
    scale: int | None = typer.Option(None, "--scale", min=1, help="display upscale (default: >= 256 px wide)"),
    seed: int = typer.Option(0, "--seed", help="seed of the image order"),
    quiz_pool: int = typer.Option(0, "--quiz-pool", min=0, help="fooled images set aside for the public quiz "
                                  "(never study images; `serve --quiz` needs them)"),
    invite: str | None = typer.Option(None, "--invite", help="comma-separated labeller names to invite right away"),
    base_url: str = typer.Option("http://127.0.0.1:8000", "--base-url", help="where labellers reach the server"),
) -> None:
    """Create a study from a run's adversarial export (`robustperf evaluate` writes it)."""
    from robustperf.human.db import StudyDB
    from robustperf.human.study import create_study_from_run

    with user_errors():
        names = None if classes is None else [c.strip() for c in classes.split(",") if c.strip()]
        study = create_study_from_run(run_dir, out, evaluation=evaluation, classes=names, batch_size=batch_size,
                                      display_scale=scale, shuffle_seed=seed, quiz_pool=quiz_pool)
        links = {}
        if invite:
            sdb = StudyDB(study)
            links = {name: sdb.invite(name.strip()) for name in invite.split(",") if name.strip()}
    console.print(f"study {study.root}: {len(study.images)} images in {study.n_batches} batches of <= "
                  f"{study.batch_size} (model: {study.n_model_correct}/{study.n_evaluated} robust-correct)")
    for name, token in links.items():
        console.print(f"{name}: {base_url.rstrip('/')}/l/{token}", soft_wrap=True)
    if not links:
        console.print(f"next: robustperf human invite {out} NAME", soft_wrap=True)


@human_app.command("invite")
def invite_cmd(
    study_dir: Path = typer.Argument(..., help="study directory"),
    name: str = typer.Argument(..., help="labeller name (letters, digits, - _ .)"),
    batches: str | None = typer.Option(None, "--batches", help="comma-separated batch numbers (default: all)"),
    base_url: str = typer.Option("http://127.0.0.1:8000", "--base-url", help="where the labeller reaches the server"),
    db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL (default: sqlite in the study directory)"),
) -> None:
    """Invite a labeller: prints their secret link (shown once; only its hash is stored)."""
    with user_errors():
        try:
            chosen = None if batches is None else [int(b) for b in batches.split(",") if b.strip()]
        except ValueError:
            fail(f"--batches {batches!r}: use comma-separated numbers such as 0,1,2")
        _, sdb = _open(study_dir, db)
        token = sdb.invite(name, batches=chosen)
    console.print(f"{name}: {base_url.rstrip('/')}/l/{token}", soft_wrap=True)


@human_app.command("revoke")
def revoke_cmd(
    study_dir: Path = typer.Argument(..., help="study directory"),
    name: str = typer.Argument(..., help="the labeller whose link stops working (their answers stay)"),
    db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL (default: sqlite in the study directory)"),
) -> None:
    """Revoke a labeller's link and end their sessions at once; `invite` under a new name gives a new link."""
    with user_errors():
        _, sdb = _open(study_dir, db)
        ended = sdb.revoke(name)
    console.print(f"{name}: link revoked, {ended} session(s) ended; their answers are kept")


@human_app.command("serve")
def serve_cmd(
    study_dir: Path = typer.Argument(..., help="study directory"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (anything but loopback exposes the app)"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL (default: sqlite in the study directory)"),
    quiz: bool = typer.Option(False, "--quiz/--no-quiz", help="also serve the anonymous public quiz at /quiz"),
    quiz_size: int = typer.Option(20, "--quiz-size", min=1, help="images per quiz visitor"),
    public_origin: str | None = typer.Option(None, "--public-origin", help="the scheme://host[:port] browsers use "
                                             "(default http://HOST:PORT; behind a proxy, its https origin)"),
) -> None:
    """Serve the labelling web app (Ctrl-C stops it; every answer is already committed)."""
    from robustperf.human.app import is_loopback, serve

    with user_errors():
        study, sdb = _open(study_dir, db)  # a damaged database stops here, before anything is served
        if quiz and not study.quiz:
            fail(f"{study_dir} has no quiz pool (the quiz must never show study images): recreate it with "
                 "`robustperf human create ... --quiz-pool 20`, or serve without --quiz")
        missing = study.missing_images()
    if not is_loopback(host):
        console.print(f"[yellow]warning[/]: binding {host} exposes the study beyond this machine; use HTTPS in front "
                      "and pass --public-origin")
    if missing:
        console.print(f"[yellow]warning[/]: {len(missing)} image files are missing (they answer 404): "
                      f"{', '.join(missing)}", soft_wrap=True)
    console.print(f"serving {study.name} on http://{host}:{port} ({len(sdb.list_labellers())} labellers"
                  f"{', quiz at /quiz' if quiz else ''})")
    with user_errors():
        serve(study, sdb, host=host, port=port, quiz=quiz, quiz_size=quiz_size, public_origin=public_origin)


@human_app.command("label")
def label_cmd(
    study_dir: Path = typer.Argument(..., help="study directory"),
    name: str = typer.Option(..., "--name", help="the machine labeller's name in the study, e.g. gpt-4o"),
    endpoint: str | None = typer.Option(None, "--endpoint", help="OpenAI-compatible base URL with image input"),
    model: str | None = typer.Option(None, "--model", help="model name for --endpoint"),
    key_env: str = typer.Option("OPENAI_API_KEY", "--key-env", help="environment variable with the API key"),
    run: Path | None = typer.Option(None, "--run", help="label with a trained robustperf run instead"),
    which: str = typer.Option("best", "--which", help="checkpoint of --run: best or last"),
    versions: str = typer.Option("adv", "--versions", help="adv, clean or adv,clean"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="stop after this many images"),
    db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL (default: sqlite in the study directory)"),
) -> None:
    """Add a machine labeller: the paper's GPT-4 prompt on a chat endpoint, or a local model (--run)."""
    from robustperf.human.machine import ChatLabeller, ChatLabellerConfig, ModelLabeller, label_study

    with user_errors():
        if (endpoint is None) == (run is None):
            fail("give either --endpoint URL --model NAME (a chat API) or --run RUN_DIR (a local model)")
        study, sdb = _open(study_dir, db)
        labeller: ChatLabeller | ModelLabeller
        if endpoint is not None:
            if not model:
                fail("--endpoint needs --model (the model name the endpoint serves)")
            labeller = ChatLabeller(ChatLabellerConfig(endpoint=endpoint, model=model, api_key_env=key_env),
                                    study.classes)
            labeller.check()
        else:
            assert run is not None
            labeller = ModelLabeller.from_run(run, which=which)
        result = label_study(study, sdb, name, labeller, versions=tuple(v.strip() for v in versions.split(",")),
                             limit=limit)
    console.print(f"{name}: {result.n_stored} answers stored, {result.n_unparsed} replies unparsed, "
                  f"{result.n_skipped} already answered")


@human_app.command("score")
def score_cmd(
    study_dir: Path = typer.Argument(..., help="study directory"),
    min_correct: int = typer.Option(2, "--min-correct", help="valid if at least this many labellers are right"),
    min_high: int = typer.Option(1, "--min-high-humans", help="... or this many humans right with high confidence"),
    majority: float = typer.Option(0.5, "--deceptive-majority", help="deceptive if more than this share of humans "
                                   "chose the model's class"),
    average: str = typer.Option("human", "--average", help="whom Table 4's average labeller averages: human, "
                                "machine or human,machine"),
    db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL (default: sqlite in the study directory)"),
) -> None:
    """Score the study: accuracy by labeller and confidence, Fleiss' kappa, validity, Table 4, report.html."""
    from rich.table import Table

    from robustperf.human.agreement import describe
    from robustperf.human.report import render_study_report
    from robustperf.human.scoring import ValidityRule, quiz_summary, score_study
    from robustperf.store.io import dumps, write_bytes_atomic

    with user_errors():
        study, sdb = _open(study_dir, db)
        rule = ValidityRule(min_correct=min_correct, min_high_confidence_humans=min_high, deceptive_majority=majority)
        score = score_study(study, sdb.all_answers(), rule, average_kinds=tuple(a.strip() for a in average.split(",")))
        quiz = quiz_summary(study, sdb.quiz_results())
        # everything is computed and rendered before the first byte is written: a failure leaves the old outputs
        files = {"score.json": (dumps({**score.summary(), "quiz": quiz}, indent=2) + "\n").encode(),
                 **render_study_report(study, score)}
        for name, content in files.items():
            write_bytes_atomic(study.root / name, content)
        report = study.root / "report.html"
    table = Table("labeller", "clean", "clean high", "adv", "adv low", "adv high")
    for s in score.labellers:
        cells = [s.acc("clean"), s.acc("clean", "high"), s.acc("adv"), s.acc("adv", "low"), s.acc("adv", "high")]
        table.add_row(f"{s.name} ({s.kind})", *["-" if v is None else f"{100 * v:.1f}%" for v in cells])
    console.print(table)
    c, t = score.counts, score.table4
    console.print(f"valid {c['valid']}  invalid {c['invalid']} (deceptive {c['deceptive']}, ambiguous "
                  f"{c['ambiguous']})  unscored {c['unscored']}")
    for version, groups in score.agreement.items():
        for a in groups.values():
            console.print(f"agreement ({version}) {describe(a)}", soft_wrap=True)

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.2f}%"

    console.print(f"Table 4: model {pct(t.model_all)} (all) {pct(t.model_valid)} (valid); + average labeller "
                  f"{pct(t.with_average_all)} (all) {pct(t.with_average_valid)} (valid), weighted by answers")
    if (t.with_average_unweighted_all, t.with_average_unweighted_valid) != (t.with_average_all, t.with_average_valid):
        console.print(f"  (unweighted mean of per-labeller accuracies: {pct(t.with_average_unweighted_all)} (all) "
                      f"{pct(t.with_average_unweighted_valid)} (valid))")
    if quiz["answers"]:
        console.print(f"public quiz: {quiz['visitors']} visitors, {quiz['answers']} answers, accuracy "
                      f"{pct(quiz['acc_any'])} (kept apart from the invited labellers)")
    console.print(f"-> {study.root / 'score.json'}, {report}")


def register(app: typer.Typer) -> None:
    app.add_typer(human_app, name="human")
