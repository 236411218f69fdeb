"""Taking a run as its owner: the run's lock, the "already finished?" check, its session, its meter, its end.

Whoever owns a whole attempt at a run (`train()`, the study's ``run_one`` around training plus evaluation,
the LLM pipeline's commands, an evaluation that writes into a run) holds the lock from before its "already
finished?" check until after the final record, so it takes it here rather than inside `RunSession`::

    with owned_run(run_dir, meter_factory=lambda: create_meter(...), interrupts=(TrainingInterrupted,)) as run:
        if run.finished:
            return ...                                  # nothing to do (the lock is released on the way out)
        session = run.open(config, kind="train", ...)  # RunSession.open
        run.start_meter()                               # the factory's meter, started by the session
        ...the work...
        session.finish(final=..., best=..., cost=...)
    # an exception inside: interrupted (Ctrl-C or one of `interrupts`) or failed, then re-raised

`robustperf.store.lock` is the lock alone, `robustperf.store.repair` what opening does to a damaged
directory; this module joins the two. The store sits below `cost`: the meter is handed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from robustperf.store.lock import RunLock, warn_if_network_fs
from robustperf.store.record import RunDir
from robustperf.store.repair import open_run
from robustperf.store.session import Meter, RunSession


def hold_run(directory: str | Path, *, force: bool = False, what: str = "trained") -> RunLock:
    """Acquire the run's lock and open it as its owner (stale temps removed, torn metrics tail cut, damaged
    result.json rebuilt: `robustperf.store.repair.open_run`). Release the returned lock when done.

    Raises:
        RunLockedError: another live process holds the run.
    """
    warn_if_network_fs(Path(directory).parent)
    lock = RunLock(directory, what=what, force=force).acquire()
    try:
        open_run(RunDir(directory))
    except BaseException:
        lock.release()
        raise
    return lock


class OwnedRun:
    """A run this process owns for one attempt (`owned_run`).

    Attributes:
        run_dir: the run's directory.
        finished: the run was already finished when it was taken (read under the lock).
        is_main: this process writes (rank 0; True outside distributed runs).
        session: the opened session (`open`); None before.
        step: where an interrupt or failure that ends the attempt is logged (the engine's current step);
            returns None (the default): no event row.
    """

    def __init__(self, run_dir: RunDir, *, finished: bool, is_main: bool,
                 meter_factory: Callable[[], Meter] | None) -> None:
        self.run_dir, self.finished, self.is_main = run_dir, finished, is_main
        self.session: RunSession | None = None
        self.step: Callable[[], int | None] = lambda: None
        self._meter_factory = meter_factory

    def open(self, config: Mapping[str, Any], **kwargs: Any) -> RunSession:
        """Open the run's session (`RunSession.open` with this owner's ``is_main``) and mark it running."""
        self.session = RunSession.open(self.run_dir, config, is_main=self.is_main, **kwargs)
        return self.session

    def start_meter(self, meter: Meter | None = None, *, prior_seconds: float = 0.0,
                    prior_joules: float | None = 0.0) -> None:
        """Start metering the work: ``meter``, or a fresh one from the owner's ``meter_factory``."""
        if self.session is None:
            raise RuntimeError("OwnedRun.open() was not called")
        if meter is None:
            if self._meter_factory is None:
                raise RuntimeError("owned_run(meter_factory=...) was not given and no meter was handed in")
            meter = self._meter_factory()
        self.session.start_meter(meter, prior_seconds=prior_seconds, prior_joules=prior_joules)


@contextmanager
def owned_run(run_dir: RunDir | str | Path, *, meter_factory: Callable[[], Meter] | None = None,
              force: bool = False, what: str = "trained", is_main: bool = True,
              interrupts: tuple[type[BaseException], ...] = ()) -> Iterator[OwnedRun]:
    """Own one attempt at a run: lock -> "already finished?" -> (the body opens the session, starts the meter,
    works and finishes) -> an exception ends the opened session as interrupted or failed and propagates.

    Args:
        run_dir: the run's directory.
        meter_factory: builds the (unstarted) energy meter `OwnedRun.start_meter` starts, e.g.
            ``lambda: create_meter(cfg.cost.energy_meter, watts=cfg.cost.watts)``.
        force: take the lock even though it is reported as held (only once its holder is gone).
        what: what the holder does ("trained", "evaluated"), written in the lock for whoever is refused.
        is_main: False on the other ranks of a multi-process run: rank 0 alone takes the lock (the others
            follow its word) and writes.
        interrupts: exception types that mean a stop signal (resumable: ``interrupted``, like a Ctrl-C),
            e.g. the training engine's `TrainingInterrupted`.

    Raises:
        RunLockedError: another live process holds the run (nothing was done).
    """
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    lock = hold_run(rd.path, force=force, what=what) if is_main else None
    try:
        run = OwnedRun(rd, finished=rd.is_finished(), is_main=is_main, meter_factory=meter_factory)
        try:
            yield run
        except BaseException as exc:
            if run.session is not None:  # nothing was claimed before the session opened: nothing to record
                run.session.end_on_error(exc, step=run.step(), interrupts=interrupts)
            raise
    finally:
        if lock is not None:
            lock.release()


__all__ = ["OwnedRun", "hold_run", "owned_run"]
