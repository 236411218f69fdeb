"""Progress bars with an ETA for long CLI work (issue 27: one AutoAttack stage ran 343 s with no output).

The library logs; the CLI draws. A study's executor logs "[done/total] run_id status" per finished run,
so `study_progress` listens to that logger and moves a rich bar; `attack_progress` is the
``on_batch(stage, batch, n_batches)`` callback of `robustperf.evaluation.evaluate`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from robustperf.cli.common import console

EXECUTOR_LOGGER = "robustperf.sweep.executors"


def _bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False)


class _RunsDone(logging.Handler):
    """Moves a bar on the executor's "[%d/%d] %s %s" records."""

    def __init__(self, progress: Progress, description: str) -> None:
        super().__init__(logging.INFO)
        self.progress = progress
        self.description = description
        self.task: TaskID | None = None

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg != "[%d/%d] %s %s" or len(args) != 4:
            return
        done, total, run_id, status = (str(a) for a in args)
        if self.task is None:
            self.task = self.progress.add_task(self.description, total=int(total))
        self.progress.update(self.task, completed=int(done), description=f"{self.description} ({run_id} {status})")


@contextmanager
def study_progress(name: str) -> Iterator[None]:
    """A bar of finished runs with elapsed time and ETA while a study runs locally."""
    progress = _bar()
    handler = _RunsDone(progress, f"study {name}")
    logger = logging.getLogger(EXECUTOR_LOGGER)
    logger.addHandler(handler)
    try:
        with progress:
            yield
    finally:
        logger.removeHandler(handler)


@contextmanager
def attack_progress(description: str) -> Iterator[Callable[[str, int, int], None]]:
    """An ``on_batch`` callback drawing one bar per attack stage (batches done, ETA)."""
    progress = _bar()
    tasks: dict[str, TaskID] = {}

    def on_batch(stage: str, batch: int, n_batches: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(f"{description}: {stage}", total=n_batches)
        progress.update(tasks[stage], completed=batch + 1)

    with progress:
        yield on_batch
