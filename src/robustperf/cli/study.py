"""`robustperf study`, `robustperf run-one` and `robustperf report`: run a scaling study and report on it."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from robustperf.cli.common import console, fail, user_errors
from robustperf.names import path_under


def study(
    study_file: Path = typer.Argument(..., help="study YAML (see configs/quickstart_study.yaml)"),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="where run directories go (default: the study's)"),
    executor: str | None = typer.Option(None, "--executor", help="local | manifest | slurm | submitit | ray"),
    workers: int | None = typer.Option(None, "--workers", min=1, help="parallel runs"),
    plan: bool = typer.Option(False, "--plan", help="only write manifest.jsonl and sbatch/bsub/qsub scripts"),
    report: bool = typer.Option(True, "--report/--no-report", help="write the HTML report at the end"),
    force: bool = typer.Option(False, "--force", help="take over the study's lock (only once the process holding it "
                               "is gone)"),
    check_design: bool = typer.Option(False, "--check-design",
                                      help="check that the grid can identify the L(N, D) exponents, then stop unless "
                                           "--plan; exit 1 if it cannot (the check also runs, as warnings, before "
                                           "every study)"),
    bootstrap: int | None = typer.Option(None, "--bootstrap", min=0,
                                         help="bootstrap resamples for the fits (default: the study's, 200; 0 skips)"),
    throughput: float = typer.Option(1000.0, "--throughput", help="with --plan: training images per second per GPU "
                                     "to estimate GPU-hours and wall time at (measure it on the cluster's GPU)"),
    cluster_gpus: int | None = typer.Option(None, "--cluster-gpus", min=1, help="with --plan: GPUs the cluster lends "
                                            "the study (default: array throttle x GPUs per run)"),
    resubmit: bool = typer.Option(False, "--resubmit", help="submit again (sbatch --array) the tasks of the planned "
                                  "study that are not finished, e.g. after its array ran out of time"),
) -> None:
    """Run every run of a study (finished runs are skipped), fit its laws and write its report."""
    from robustperf.sweep import load_study, run_study
    from robustperf.sweep.runner import check_study
    from robustperf.sweep.study import expand

    with user_errors():
        spec = load_study(study_file)
        if resubmit:
            _resubmit(spec, runs_dir or Path(spec.runs_dir))
            return
        if bootstrap is not None:
            spec = spec.model_copy(update={"fit": spec.fit.model_copy(update={"bootstrap": bootstrap})})
        # names and sizes first: a typo is one error line, not buried under the design check's warnings
        check_study(spec, expand(spec), plan=plan, executor=executor)
    design_ok = _design_step(spec, verbose=check_design)
    if check_design and not plan:
        raise typer.Exit(0 if design_ok else 1)
    from robustperf.cli.progress import study_progress

    with user_errors(), study_progress(spec.name):  # a bar with ETA over the finished runs (issue 27)
        result = run_study(spec, runs_dir, executor=executor, workers=workers, plan=plan, force=force)
    if plan:
        assert result.manifest_path is not None, "a plan always writes a manifest"
        console.print(f"manifest: {result.manifest_path}")
        with user_errors():
            _cluster_plan(spec, result.manifest_path, throughput, cluster_gpus)
        console.print(f"submit with: sbatch {result.manifest_path.parent / 'submit.sbatch'}  |  "
                      f"bsub < {result.manifest_path.parent / 'submit.bsub'}  |  "
                      f"qsub {result.manifest_path.parent / 'submit.qsub'}")
        return
    ex = result.execution
    assert ex is not None, "run_study executes the runs unless plan=True"
    n_interrupted = ex.count("interrupted")
    console.print(f"study {spec.name}: {len(result.run_ids)} runs in {result.wall_seconds:.1f} s - "
                  f"{ex.count('finished')} finished, {ex.count('skipped')} skipped, {ex.n_failed} failed"
                  + (f", {n_interrupted} interrupted (run the same command to resume)" if n_interrupted else ""))
    for r in ex.results:
        if r.get("status") in ("failed", "interrupted"):
            console.print(f"  [red]{r.get('status')}[/] {r.get('run_id')}: {r.get('failure_reason')}")
    if report:
        from robustperf.report import build_report

        with user_errors():
            html = build_report(result.runs_dir, path_under(result.runs_dir, "reports", spec.name), study=spec)
        summary = json.loads((html.parent / "analysis.json").read_text()).get("summary")
        if summary:
            console.print(f"what this study says: {summary}", markup=False)  # brackets are intervals
        console.print(f"report: {html}")
    if ex.n_failed or n_interrupted:
        raise typer.Exit(1)


def _cluster_plan(spec, manifest: Path, throughput: float, cluster_gpus: int | None) -> None:  # noqa: ANN001
    """Print what the cluster is asked for and add it to the manifest directory's plan.json."""
    from robustperf.store import read_json, write_json_atomic
    from robustperf.sweep.cluster_plan import cluster_plan
    from robustperf.sweep.study import expand

    ex = spec.executor
    gpus = cluster_gpus or ex.array_parallelism * max(1, ex.gpus_per_run) * ex.nodes_per_run
    plan = cluster_plan(spec, expand(spec), throughput=throughput, cluster_gpus=gpus)
    for line in plan.lines():
        console.print(line, markup=False)
    path = manifest.parent / "plan.json"
    write_json_atomic(path, {**(read_json(path) if path.is_file() else {}), "cluster": plan.to_dict()})


def _resubmit(spec, runs_dir: Path) -> None:  # noqa: ANN001 - a StudyConfig
    from robustperf.sweep.resubmit import resubmit

    out = resubmit(spec, runs_dir)
    if not out.unfinished:
        console.print(f"study {spec.name}: every run is finished and evaluated; nothing to resubmit")
    elif out.job_id is not None:
        console.print(f"study {spec.name}: resubmitted {len(out.unfinished)} unfinished task(s) (--array={out.array}) "
                      f"as Slurm job {out.job_id}")
    else:
        console.print(f"study {spec.name}: {len(out.unfinished)} unfinished task(s); sbatch is not here, submit with:\n"
                      f"  {' '.join(out.command)}", markup=False)


def _design_step(spec, *, verbose: bool) -> bool:
    """Warn before training when the grid cannot identify an exponent of its L(N, D) law (issue 11)."""
    if spec.fit.surface == "none":
        return True
    from robustperf.sweep.design import check_design

    try:
        design = check_design(spec)
    except Exception as exc:  # noqa: BLE001 - advice only: a grid whose data live elsewhere (a cluster) still runs
        console.print(f"[yellow]design check skipped: {type(exc).__name__}: {exc}[/]")
        return True
    if verbose or design.issues:
        console.print(f"design of {spec.name!r} ({design.n_runs} runs) for the L(N, D) fit:")
        for line in design.lines():
            colour = "red" if line.startswith("error") else "yellow" if line.startswith("warning") else "default"
            console.print(f"  [{colour}]{line}[/]")
    return design.ok


def run_one_cmd(
    manifest: Path = typer.Option(..., "--manifest", help="manifest.jsonl written by `robustperf study --plan`"),
    index: int | None = typer.Option(None, "--index", help="0-based entry (default: the scheduler's array index)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON line"),
) -> None:
    """Run one manifest entry (index from --index, SLURM_ARRAY_TASK_ID, LSB_JOBINDEX or PBS_ARRAY_INDEX)."""
    from robustperf.early_signals import catch_early_stop_signals

    catch_early_stop_signals()  # a scheduler's warning during the imports below must not kill the task
    from robustperf.sweep import run_manifest_index
    from robustperf.sweep.executors import die_with_parent_from_env

    die_with_parent_from_env()  # started by a study's manifest executor: never outlive it
    with user_errors():
        summary = run_manifest_index(manifest, index)
    if as_json:
        print(json.dumps(summary))  # noqa: T201 - machine-readable output for the manifest executor
    else:
        console.print(f"{summary.get('run_id')}: {summary.get('status')} {summary.get('failure_reason') or ''}")
    if summary.get("status") == "interrupted":  # checkpointed by a stop signal: ask Slurm for the task again
        from robustperf.sweep.requeue import requeue_slurm_task
        from robustperf.training.signals import REQUEUE_EXIT_CODE

        if requeue_slurm_task():
            console.print("requeued: the task resumes from its step checkpoint")
        raise typer.Exit(REQUEUE_EXIT_CODE)
    if summary.get("status") == "failed":
        raise typer.Exit(1)
    if summary.get("status") == "locked":  # another process is running it: try again later (EX_TEMPFAIL)
        raise typer.Exit(75)


def report(
    path: Path = typer.Argument(..., help="a runs directory or a study YAML"),
    out: Path | None = typer.Option(None, "--out", help="output directory (default: RUNS/reports/<name>)"),
    overlay: list[Path] = typer.Option([], "--overlay", help="published CSV to overlay (RobustBench, Debenedetti)"),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="runs directory of a study YAML"),
    bootstrap: int | None = typer.Option(None, "--bootstrap", min=0,
                                         help="bootstrap resamples for every interval (default: the study's or 200; "
                                              "0 skips)"),
    human: list[Path] = typer.Option([], "--human", help="a human-alignment study directory to score and embed "
                                     "(robustperf human create); repeatable"),
) -> None:
    """Write a self-contained HTML report (figures as PNG and SVG) of a study or a runs directory."""
    from robustperf.report import build_report

    with user_errors():
        if path.is_file():
            from robustperf.sweep import load_study

            spec = load_study(path)
            root = Path(runs_dir or spec.runs_dir)
            target = out or path_under(root, "reports", spec.name)
            html = build_report(root, target, study=spec, overlays=overlay, bootstrap=bootstrap, human=human)
        elif path.is_dir():
            html = build_report(path, out or path / "reports" / "all", overlays=overlay, bootstrap=bootstrap,
                                human=human)
        else:
            fail(f"{path} is neither a runs directory nor a study file")
    console.print(f"report: {html}")


def register(app: typer.Typer) -> None:
    app.command("study")(study)
    app.command("run-one")(run_one_cmd)
    app.command("report")(report)
