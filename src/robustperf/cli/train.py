"""`robustperf train CONFIG [--set k=v ...] [--runs-dir DIR] [--no-resume]`: one training run."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import typer

from robustperf.cli.common import console, fail, user_errors


class _ProgressReporter:
    """Turns the loop's TrainEvents into a rich progress bar (images/s, ETA) and one line per evaluation."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: Any = None
        self.task: Any = None
        self._mark: tuple[float, int] | None = None

    def __enter__(self) -> _ProgressReporter:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} img/s"), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), console=console,
            )
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, event: Any) -> None:
        if self.progress is None:
            return
        if event.kind == "start":
            self.task = self.progress.add_task("train", total=event.total_steps, completed=event.step,
                                               epoch=event.epoch, rate="-")
            self._mark = (time.perf_counter(), event.samples_seen)
        elif event.kind == "step" and self.task is not None:
            self.progress.update(self.task, completed=event.step, epoch=event.epoch, rate=self._rate(event))
        elif event.kind == "eval" and event.metrics:
            m = event.metrics
            self.progress.console.print(
                f"epoch {m['epoch']}: clean {m['clean_acc']:.3f}  robust {m['robust_acc']:.3f}  "
                f"adv_loss {m['adv_loss']:.3f}  train_loss {m['train_loss']:.3f}"
            )

    def _rate(self, event: Any) -> str:
        now = time.perf_counter()
        assert self._mark is not None
        t0, s0 = self._mark
        if now - t0 < 1.0:
            return self.progress.tasks[0].fields.get("rate", "-")
        self._mark = (now, event.samples_seen)
        return f"{(event.samples_seen - s0) / (now - t0):,.0f}"


def train_command(
    config: Path = typer.Argument(..., help="YAML config, e.g. configs/quickstart.yaml"),
    overrides: list[str] = typer.Option(None, "--set", help="override a key: --set optim.lr=0.05 (repeatable)"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="directory holding one folder per run"),
    no_resume: bool = typer.Option(False, "--no-resume", help="start over instead of resuming a previous attempt"),
    force: bool = typer.Option(False, "--force", help="take over the run's lock (only once the process holding it is "
                               "gone, e.g. a stale lock on a network file system)"),
) -> None:
    """Train one model; prints the run directory and the final clean and PGD accuracy."""
    with user_errors():
        from robustperf.config import load_config

        cfg = load_config(config, overrides or [])
        from robustperf.training import TrainingInterrupted, train

        show = cfg.runtime.progress and os.environ.get("RANK", "0") == "0"
        try:
            with _ProgressReporter(show) as reporter:
                run_dir = train(cfg, runs_dir, resume=not no_resume, callback=reporter, force=force)
        except TrainingInterrupted as exc:
            fail(str(exc), code=128 + exc.signum)  # what a shell reports for a signalled process
    record = run_dir.read_record()
    if record is None or record.status != "finished":
        reason = record.failure_reason if record is not None else "no result.json"
        fail(f"run {run_dir.run_id} failed: {reason} (see {run_dir.path}/metrics.jsonl)", code=1)
    final = record.final
    console.print(f"run dir: {run_dir.path}")
    console.print(
        f"final: clean_acc {final.get('clean_acc', float('nan')):.4f}  robust_acc {final.get('robust_acc', float('nan')):.4f}"
        f"  (epoch {final.get('epoch')}, {final.get('samples_seen')} samples)"
    )


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
