"""`robustperf evaluate RUN_DIR`: attack a trained run's model and store the result in the run record.

Writes ``RUN_DIR/evaluations/<name>.json`` (summary, flags, per-attack times) and ``<name>.npz``
(per-point flags, misclassified adversarial/clean pairs), keeps a resumable state in
``RUN_DIR/evaluations/<name>_state/`` (a preempted evaluation run again continues where it stopped), and
merges the summary into ``result.json`` under ``evaluations[<name>]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from robustperf.cli.common import console, fail, user_errors
from robustperf.evaluation.run import evaluation_name  # noqa: F401  (re-exported: it was defined here)
from robustperf.threat import read_eps

if TYPE_CHECKING:
    from robustperf.attacks.sharding import Shard
    from robustperf.evaluation import EvalResult


def parse_eps(text: str) -> float:
    """Read eps as a float or a fraction such as "8/255"."""
    try:
        value = read_eps(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"cannot read eps {text!r}: use a number in [0, 1] or a fraction like 8/255") from None
    if not 0 <= value <= 1:
        raise ValueError(f"eps {text!r} = {value:.6g} is outside [0, 1] (eps is in [0, 1] pixel units)")
    return value


def evaluate_cmd(
    run_dir: Path = typer.Argument(..., help="run directory (runs/<run_id>)"),
    attack: str = typer.Option("autoattack", "--attack", help="autoattack, or a registered attack such as pgd"),
    eps: str | None = typer.Option(None, "--eps", help="radius, e.g. 8/255 (default: the run's evaluation eps, its training eps)"),
    norm: str | None = typer.Option(None, "--norm", help="linf or l2 (default: the run's training norm)"),
    n_examples: int = typer.Option(1000, "--n-examples", min=1, help="held-out points to attack"),
    version: str = typer.Option("standard", "--version", help="AutoAttack version: standard, plus, rand"),
    which: str = typer.Option("best", "--which", help="checkpoint: best or last"),
    batch_size: int = typer.Option(500, "--batch-size", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N"),
    seed: int = typer.Option(0, "--seed", help="attack seed"),
    bf16: bool = typer.Option(False, "--bf16", help="search in bf16 (every verdict is still fp32)"),
    nproc: int = typer.Option(1, "--nproc", min=1, help="processes that split the attack batches (one per GPU, or "
                              "CPU processes); the verdicts equal one process's"),
) -> None:
    """Evaluate a trained run under AutoAttack or PGD and record the result in the run."""
    from robustperf.store.owner import owned_run

    with user_errors():
        if not (run_dir / "config.json").is_file():
            fail(f"{run_dir} is not a run directory (no config.json); see `robustperf runs list`")
        with owned_run(run_dir, what="evaluated"):  # not while another process trains or evaluates it
            args = (run_dir, attack, eps, norm, n_examples, version, which, batch_size, device, seed, bf16)
            if nproc == 1:
                result, json_path = _evaluate(*args)
                _print(result.summary(), json_path)
            else:
                from robustperf.cli.evaluate_shards import launch

                _print(*launch(nproc, args))


def _evaluate(
    run_dir: Path,
    attack: str,
    eps_text: str | None,
    norm: str | None,
    n_examples: int,
    version: str,
    which: str,
    batch_size: int,
    device: str,
    seed: int,
    bf16: bool,
    shard: Shard | None = None,
) -> tuple[EvalResult, Path]:
    """Evaluate and store the result (rank 0 of a sharded evaluation stores it); the result and its JSON path."""
    from contextlib import nullcontext

    from robustperf.cli.progress import attack_progress
    from robustperf.evaluation.run import RunEvaluation, evaluate_run
    from robustperf.store import RunDir, utcnow

    rd = RunDir(run_dir)
    if not rd.exists():
        fail(f"{run_dir} is not a run directory (no config.json); see `robustperf runs list`")
    if which not in ("best", "last"):
        fail(f"--which {which!r}: use best or last")
    eps = parse_eps(eps_text) if eps_text is not None else None  # None: the run's evaluation threat model (RunConfig.eval_threat)
    main = shard is None or shard.rank == 0

    def announce(name: str, dev: Any) -> None:
        if main:
            console.print(f"evaluating {rd.run_id} ({which}) with {name} on {dev}"
                          + (f", {shard.world_size} processes" if shard is not None else ""))

    def entry(ev: RunEvaluation) -> dict[str, Any]:
        return {**ev.result.summary(), "which": which, "evaluated_at": utcnow(), "files": ev.files,
                "n_processes": shard.world_size if shard else 1}

    bars = attack_progress(rd.run_id) if main else nullcontext(None)  # one bar per attack stage, with ETA
    with bars as on_batch:
        # data_seed 0: the held-out subset the training engine uses
        ev = evaluate_run(
            rd, attack=attack, which=which, n_examples=n_examples, eps=eps, norm=norm, version=version,
            data_seed=0, device=device, device_setting="--device", shard=shard, state_suffix="_state", save_files=True,
            announce=announce, entry=entry, batch_size=batch_size, seed=seed,
            search_dtype="bf16" if bf16 else "fp32", save_outputs=False, on_batch=on_batch,
        )  # fmt: skip
    return ev.result, rd.evaluations_dir / f"{ev.key}.json"


def _print(summary: dict[str, Any], json_path: Path) -> None:
    """The per-stage table and the headline of an evaluation's summary (`EvalResult.summary`)."""
    from rich.table import Table

    table = Table("stage", "robust_acc", "seconds", "fooled")
    for label, row in summary["per_attack"].items():
        table.add_row(label, f"{100 * row['robust_acc']:.2f}%", f"{row['seconds']:.1f}", str(row["n_fooled"]))
    console.print(table)
    console.print(
        f"clean {100 * summary['clean_acc']:.2f}%  robust {100 * summary['robust_acc']:.2f}%  "
        f"({summary['seconds']:.1f} s)  -> {json_path}"
    )
    for name, flag in summary["flags"].items():
        if flag["fired"]:
            console.print(f"[yellow]flag {name}[/]: {flag['detail']}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
