"""`RunSession`: the one owner of a run's life in its run directory.

Every kind of run (an image training run, an LLM fine-tune/attack/adversarial-training run, a study
entry that failed before it could start) goes through the same steps, in this order::

    session = RunSession.open(run_dir, config, kind=..., provenance=..., resumed_at_step=...)
    session.start_meter(create_meter(...))        # energy and wall time of the work (cost.energy's meter)
    ... the work: metrics rows through session.log(row) ...
    session.finish(final=..., best=..., cost=CostRecord)   # or .fail(reason) / .interrupt(reason)

Engines do not write these steps out themselves: they run under `robustperf.store.owner.owned_run`, which takes
the run's lock, checks "already finished?", opens the session and starts the meter it is handed when the body
asks, and on the way out ends it as interrupted (a Ctrl-C, the engine's stop exception) or failed
(`end_on_error`), unless the body already finished, failed or interrupted it.

`open` writes the resolved config, cuts (or clears) ``metrics.jsonl`` to match what is resumed, and
marks the record ``running``; `finish` freezes the typed ``final``/``best``/``cost`` blocks and marks it
``finished``; `fail` and `interrupt` write a metrics event and the reason. In a distributed run every
rank holds a session but only the main one (``is_main``) writes.

This module is the one writer of a run's status (`RunStatus`): besides the session's own steps,
`record_failure` (a run that failed before or around its session), `record_rebuilt` and `record_corrupt`
(what `robustperf.store.repair` finds in a damaged directory).
"""

from __future__ import annotations

import errno
import logging
import signal
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, ClassVar, Protocol

from robustperf.store.blocks import CostRecord, Metrics
from robustperf.store.io import dumps, write_in_place, write_text_atomic
from robustperf.store.metrics_file import truncate_metrics_after
from robustperf.store.record import RunDir, RunRecord, RunStatus, provenance, utcnow

log = logging.getLogger(__name__)

CTRL_C = "interrupted by Ctrl-C (KeyboardInterrupt); run the same command again to continue"


class Reading(Protocol):
    """What a meter reads over its window (a frozen dataclass, e.g. `robustperf.cost.energy.EnergyReading`)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def seconds(self) -> float: ...

    @property
    def joules(self) -> float | None: ...

    @property
    def source(self) -> str: ...


class Meter(Protocol):
    """An energy meter the session is handed (`robustperf.cost.energy.create_meter` builds one); the store
    sits below `cost`, so it knows meters by this shape only."""

    def start(self) -> None: ...

    def read(self) -> Reading: ...

    def stop(self) -> Reading: ...


class RunSession:
    """A run directory claimed by one process for one attempt at the run.

    Attributes:
        run_dir: the run directory.
        is_main: whether this process writes (rank 0; True outside distributed runs).
        resumed: whether this attempt continues an earlier one.
    """

    def __init__(self, run_dir: RunDir, *, is_main: bool = True, resumed: bool = False) -> None:
        self.run_dir, self.is_main, self.resumed = run_dir, is_main, resumed
        self._meter: Meter | None = None
        self._meter_running = False
        self.ended = False  # finish, fail or interrupt has run: the run's end is recorded
        self._prior_seconds = 0.0
        self._prior_joules: float | None = 0.0
        self._t_start = time.perf_counter()

    # ------------------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        run_dir: RunDir,
        config: Mapping[str, Any],
        *,
        kind: str = "train",
        provenance_extra: Mapping[str, Any] | None = None,
        resumed_at_step: int | None = None,
        resumes: bool = False,
        is_main: bool = True,
        metrics_bytes: int | None = None,
        expected_evals: int | None = None,
    ) -> RunSession:
        """Claim ``run_dir`` for this attempt and mark the run running.

        Args:
            run_dir: the run's directory (created if missing).
            config: the resolved config, written as ``config.json``.
            kind: the record's kind ("train" or "llm").
            provenance_extra: what to add to the provenance (device, seed, command...).
            resumed_at_step: the step of the checkpoint this attempt resumes from (metrics logged after it
                are dropped); None: a fresh start (metrics of an earlier attempt are deleted).
            resumes: the attempt resumes from a state the engine reconciles the metrics with itself (the LLM
                rounds); the metrics are left as they are.
            is_main: False on the non-main ranks of a distributed run (nothing is written).
            metrics_bytes: size of metrics.jsonl when the resumed checkpoint was written (cut back to it).
            expected_evals: evaluation rows the run wrote up to the checkpoint (fewer: a warning, rows were lost).
        """
        session = cls(run_dir, is_main=is_main, resumed=resumes or resumed_at_step is not None)
        if not is_main:
            return session
        # The one place a run directory is claimed. Its owner (store/lock.py `hold_run`: train(), run_one, the
        # LLM pipeline) holds the run's lock from before its "finished?" check until after the final record,
        # and opening it as owner already removed stale temps, cut a torn metrics tail and repaired a damaged
        # result.json (store/repair.py `open_run`).
        run_dir.path.mkdir(parents=True, exist_ok=True)
        run_dir.write_config(dict(config))
        previous = run_dir.read_record()
        if resumed_at_step is not None:
            session.truncate_metrics(resumed_at_step, size_at_checkpoint=metrics_bytes,
                                     expected_evals=expected_evals)
            session.log({"kind": "event", "event": "resumed", "step": resumed_at_step, "time": utcnow()})
        elif not resumes:
            run_dir.metrics_path.unlink(missing_ok=True)  # a fresh start must not mix with an earlier attempt's rows
        started = previous.started_at if (previous is not None and session.resumed) else utcnow()
        run_dir.update_record(run_id=run_dir.run_id, status=RunStatus.RUNNING, failure_reason=None, started_at=started,
                              ended_at=None, kind=kind,
                              provenance=provenance({**(provenance_extra or {}), "resumed": session.resumed}))
        return session

    def truncate_metrics(self, step: int, *, size_at_checkpoint: int | None = None,
                         expected_evals: int | None = None) -> int:
        """Drop metrics rows logged after the checkpoint at ``step`` (they are about to be redone); returns how
        many (`robustperf.store.metrics_file.truncate_metrics_after`: cut back to ``size_at_checkpoint`` when
        known)."""
        dropped = truncate_metrics_after(self.run_dir.metrics_path, step, expected_evals=expected_evals,
                                         size_at_checkpoint=size_at_checkpoint)
        if dropped:
            log.warning("%s: dropped %d metrics rows logged after step %d (redone on resume)",
                        self.run_dir.run_id, dropped, step)
        return dropped

    # ------------------------------------------------------------------------------ while running

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one metrics row (main process only)."""
        if self.is_main:
            self.run_dir.append_metrics(dict(row))

    def update(self, **changes: Any) -> None:
        """Merge ``changes`` into result.json (main process only), e.g. the ``final``/``best`` of an evaluation."""
        if self.is_main:
            self.run_dir.update_record(**changes)

    def write_text(self, name: str, text: str) -> None:
        """A text file in the run directory, written atomically (main process only)."""
        if self.is_main:
            write_text_atomic(self.run_dir.path / name, text)

    def start_meter(self, meter: Meter, *, prior_seconds: float = 0.0, prior_joules: float | None = 0.0) -> None:
        """Start metering energy and time with ``meter`` (built, not started, by the caller).

        Args:
            meter: the energy meter, e.g. ``create_meter(cfg.cost.energy_meter, watts=cfg.cost.watts)``.
            prior_seconds, prior_joules: what earlier attempts of a resumed run measured.
        """
        self._prior_seconds, self._prior_joules = prior_seconds, prior_joules
        self._meter = meter
        self._meter.start()
        self._meter_running = True
        self._t_start = time.perf_counter()

    def seconds(self) -> float:
        """Wall seconds of the run so far, earlier attempts included."""
        return self._prior_seconds + (time.perf_counter() - self._t_start)

    def measured(self) -> tuple[float, float | None]:
        """(seconds, joules) so far, earlier attempts included; joules None for a time-only meter."""
        reading = self._require_meter().read()
        return self._prior_seconds + reading.seconds, _add(self._prior_joules, reading.joules)

    def stop_meter(self) -> Reading:
        """End the metered window: totals with earlier attempts included (source: the meter's)."""
        reading = self._require_meter().stop()
        self._meter_running = False
        return replace(reading, seconds=self._prior_seconds + reading.seconds,
                       joules=_add(self._prior_joules, reading.joules))

    def _require_meter(self) -> Meter:
        if self._meter is None:
            raise RuntimeError("RunSession.start_meter() was not called")
        return self._meter

    # ------------------------------------------------------------------------------ ending

    def finish(self, *, final: Mapping[str, Any] | None = None, best: Mapping[str, Any] | None = None,
               cost: CostRecord | Mapping[str, Any] | None = None) -> None:
        """Mark the run finished with its frozen ``final``, ``best`` and ``cost`` blocks."""
        if not self.is_main:
            self._release()
            return
        changes: dict[str, Any] = {"status": RunStatus.FINISHED, "failure_reason": None, "ended_at": utcnow()}
        if final is not None:
            changes["final"] = Metrics.from_dict(final)
        if best is not None:
            changes["best"] = Metrics.from_dict(best)
        if cost is not None:
            changes["cost"] = CostRecord.from_dict(cost)
        self.run_dir.update_record(**changes)
        self._release()

    def fail(self, reason: str, *, step: int | None = None, trace: str | None = None) -> None:
        """Mark the run failed with ``reason``; ``step``: also log a failed event there; ``trace``: failure.txt."""
        log.error("run %s failed: %s", self.run_dir.run_id, reason)
        if not self.is_main:
            self._release()
            return
        # the status first, and each write on its own: a full disk must not leave the run `running`
        self._record_failed(reason)
        with _logged_oserror(f"run {self.run_dir.run_id}: could not log the failure event"):
            if step is not None:
                self.log({"kind": "event", "event": "failed", "step": step, "reason": reason})
        with _logged_oserror(f"run {self.run_dir.run_id}: could not write failure.txt"):
            if trace is not None:
                self.write_text("failure.txt", trace)
        self._release()

    def _record_failed(self, reason: str) -> None:
        try:
            self.run_dir.update_record(status=RunStatus.FAILED, failure_reason=reason, ended_at=utcnow())
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            # no room for a temp file: overwrite result.json in place (it shrinks or keeps its size)
            log.error("run %s: %s; writing its failed status in place", self.run_dir.run_id, exc)
            record = self.run_dir.read_record() or RunRecord(run_id=self.run_dir.run_id)
            record.status, record.failure_reason, record.ended_at = RunStatus.FAILED, reason, utcnow()
            write_in_place(self.run_dir.result_path, dumps(record.to_dict()).encode())

    def interrupt(self, reason: str, *, step: int | None, signal_name: str) -> None:
        """Mark the run interrupted by a stop signal (resumable from the checkpoint at ``step``; None: no step
        is known, no event row is logged)."""
        if not self.is_main:
            self._release()
            return
        if step is not None:
            self.log({"kind": "event", "event": "interrupted", "step": step, "signal": signal_name,
                      "time": utcnow()})
        self.run_dir.update_record(status=RunStatus.INTERRUPTED, failure_reason=reason, ended_at=utcnow())
        self._release()

    def _release(self) -> None:
        """The attempt has ended: stop the meter if the work left it running (a failure or a Ctrl-C mid-run), so
        no sampling thread outlives the run, and mark the session ended. The lock is the owner's
        (`robustperf.store.owner.owned_run`), released one level up."""
        self.ended = True
        if self._meter is not None and self._meter_running:
            self._meter_running = False
            try:
                self._meter.stop()
            except Exception as exc:  # noqa: BLE001 - the run's end is recorded; a meter that fails to stop is not
                log.warning("run %s: stopping its meter failed (%s: %s)", self.run_dir.run_id,
                            type(exc).__name__, exc)

    def end_on_error(self, exc: BaseException, *, step: int | None = None,
                     interrupts: tuple[type[BaseException], ...] = ()) -> None:
        """Record how ``exc`` ended the attempt, unless `finish`, `fail` or `interrupt` already did: a Ctrl-C
        (`KeyboardInterrupt`) or one of ``interrupts`` (the engine's stop signals) -> interrupted (resumable),
        anything else -> failed (``Type: message``). ``step``: where the event row is logged (None: none)."""
        if self.ended:
            return
        if isinstance(exc, KeyboardInterrupt):
            self.interrupt(CTRL_C, step=step, signal_name="SIGINT")
        elif interrupts and isinstance(exc, interrupts):
            signum = getattr(exc, "signum", None)
            name = signal.Signals(signum).name if isinstance(signum, int) else type(exc).__name__
            self.interrupt(f"{type(exc).__name__}: {exc}", step=step, signal_name=name)
        else:
            self.fail(f"{type(exc).__name__}: {exc}", step=step)

    @contextmanager
    def failing_on_error(self) -> Iterator[RunSession]:
        """Any exception inside marks the run failed (``Type: message``) and propagates; a Ctrl-C
        (`KeyboardInterrupt`) marks it interrupted instead, as a stop signal would (resumable): `end_on_error`."""
        try:
            yield self
        except BaseException as exc:
            self.end_on_error(exc)
            raise

    @staticmethod
    def record_failure(run_dir: RunDir, config: Mapping[str, Any], reason: str, trace: str | None = None) -> None:
        """Record a run that failed outside any session (before or around its engine): config if it was
        never written, status failed with ``reason``, the traceback in ``failure.txt``."""
        if not run_dir.exists():
            run_dir.write_config(dict(config))
        RunSession(run_dir).fail(reason, trace=trace)

    @staticmethod
    def record_rebuilt(run_dir: RunDir, reason: str, *, final: Mapping[str, Any], best: Mapping[str, Any]) -> None:
        """Replace a damaged result.json by one rebuilt from a checkpoint: ``interrupted`` (the next attempt
        resumes there and writes the final record), with the checkpoint's ``final`` and ``best`` metrics."""
        run_dir.write_record(RunRecord(run_id=run_dir.run_id, status=RunStatus.INTERRUPTED, failure_reason=reason,
                                       final=Metrics.from_dict(final), best=Metrics.from_dict(best)))

    @staticmethod
    def record_corrupt(run_dir: RunDir, reason: str) -> None:
        """Replace a damaged result.json that nothing can rebuild by a ``corrupt`` record saying why."""
        run_dir.write_record(RunRecord(run_id=run_dir.run_id, status=RunStatus.CORRUPT, failure_reason=reason))


@contextmanager
def _logged_oserror(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        log.error("%s: %s", what, exc)


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


__all__ = ["CTRL_C", "Meter", "Reading", "RunSession"]
