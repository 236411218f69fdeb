"""Live logging while a run trains: the ``tracking:`` config block turned into tracker sinks.

The training loop hands every row it writes to ``metrics.jsonl`` to `LiveTracking.log_row`; each sink
receives the row's numbers as ``train/<key>`` or ``eval/<key>`` at its step. The sinks run in one
background thread fed by a queue, so a training step only pays for putting a row on the queue, never for a
tracker's file writes or inter-process calls (benchmarks/tracking_overhead.py). A sink that fails to open,
log or close is logged once and dropped: a tracker never fails a run. Off by default (no block, no sinks,
and `open_tracking` returns None so the loop does nothing extra).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from robustperf.config import TrackingConfig

log = logging.getLogger(__name__)


class LiveSink(Protocol):
    name: str

    def log(self, values: dict[str, float], step: int) -> None: ...

    def close(self, status: str) -> None: ...


def row_values(row: dict[str, Any]) -> tuple[dict[str, float], int] | None:
    """({"train/loss": ...}, step) of a metrics.jsonl row (kind train or eval, or the final cost), else None."""
    kind, step = row.get("kind"), row.get("step")
    if kind not in ("train", "eval", "cost") or not isinstance(step, int):
        return None
    values = {f"{kind}/{k}": float(v) for k, v in row.items()
              if k not in ("kind", "step") and isinstance(v, (int, float)) and not isinstance(v, bool)
              and math.isfinite(float(v))}
    return values, step


_CLOSE = object()  # the queue's last item


class LiveTracking:
    """The open sinks of one run, fed from a queue by a background thread (``background=False``: inline).

    Args:
        sinks: opened trackers.
        background: run the sinks in a worker thread (the default); inline calls are for tests and tools.
        max_pending: rows the queue holds before new ones are dropped (with one warning) rather than wait.
        close_timeout_s: how long `close` waits for the worker to flush before giving up on the rest.
    """

    def __init__(self, sinks: list[LiveSink], *, background: bool = True, max_pending: int = 10_000,
                 close_timeout_s: float = 120.0) -> None:
        self.sinks = list(sinks)
        self.close_timeout_s = close_timeout_s
        self._dropped = 0
        self._queue: queue.Queue[Any] | None = None
        self._worker: threading.Thread | None = None
        if background and self.sinks:
            self._queue = queue.Queue(maxsize=max_pending)
            self._worker = threading.Thread(target=self._drain, name="robustperf-tracking", daemon=True)
            self._worker.start()

    def log_row(self, row: dict[str, Any]) -> None:
        parsed = row_values(row)
        if parsed is None or not parsed[0]:
            return
        if self._queue is None:
            self._log(parsed)
            return
        try:
            self._queue.put_nowait(parsed)
        except queue.Full:
            if self._dropped == 0:
                log.warning("the trackers fall behind (%d rows pending): rows are dropped until they catch up",
                            self._queue.maxsize)
            self._dropped += 1

    def close(self, status: str) -> None:
        if self._queue is not None and self._worker is not None:
            self._queue.put((_CLOSE, status))
            self._worker.join(self.close_timeout_s)
            if self._worker.is_alive():
                log.warning("the trackers did not flush within %.0f s: the rest of their rows is dropped",
                            self.close_timeout_s)
        else:
            self._close_sinks(status)
        self.sinks = []

    def _close_sinks(self, status: str) -> None:
        self._each("close", lambda s: s.close(status))

    def _log(self, parsed: tuple[dict[str, float], int]) -> None:
        self._each("log", lambda s: s.log(*parsed))

    def _drain(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if isinstance(item, tuple) and item and item[0] is _CLOSE:
                self._close_sinks(str(item[1]))
                return
            self._log(item)

    def _each(self, what: str, call: Callable[[LiveSink], None]) -> None:
        for sink in list(self.sinks):
            try:
                call(sink)
            except Exception as exc:  # noqa: BLE001 - a tracker's failure must never fail the run
                log.warning("tracker %s failed to %s (%s: %s): it is skipped for the rest of this run",
                            sink.name, what, type(exc).__name__, exc)
                self.sinks.remove(sink)


def _openers(cfg: TrackingConfig, run_id: str, params: dict[str, Any]) -> list[tuple[str, Callable[[], LiveSink]]]:
    openers: list[tuple[str, Callable[[], LiveSink]]] = []
    if cfg.mlflow is not None:
        m = cfg.mlflow

        def _mlflow() -> LiveSink:
            from robustperf.tracking.mlflow_sink import MLflowLive

            return MLflowLive(m.uri, m.experiment, run_id, params)

        openers.append(("mlflow", _mlflow))
    if cfg.tensorboard is not None:
        t = cfg.tensorboard

        def _tensorboard() -> LiveSink:
            from robustperf.tracking.tensorboard_sink import TensorBoardLive

            return TensorBoardLive(t.dir, run_id, params)

        openers.append(("tensorboard", _tensorboard))
    if cfg.wandb is not None:
        w = cfg.wandb

        def _wandb() -> LiveSink:
            from robustperf.tracking.wandb_sink import WandbLive

            return WandbLive(w.project, w.dir, w.mode, run_id, params, entity=w.entity)

        openers.append(("wandb", _wandb))
    return openers


def open_tracking(cfg: TrackingConfig, run_id: str, resolved: dict[str, Any], *,
                  background: bool = True) -> LiveTracking | None:
    """The sinks the block asks for (None when it asks for none); one that cannot open is logged and skipped.

    ``background=False`` calls the trackers inline, in the caller's thread.
    """
    from robustperf.store.index import flatten

    params = {k: v for k, v in flatten(resolved).items() if v is not None}
    sinks: list[LiveSink] = []
    for name, opener in _openers(cfg, run_id, params):
        try:
            sinks.append(opener())
        except Exception as exc:  # noqa: BLE001 - a tracker's failure must never fail the run
            log.warning("tracker %s could not start (%s: %s): the run goes on without it", name,
                        type(exc).__name__, " ".join(str(exc).split()))
    return LiveTracking(sinks, background=background) if sinks else None


__all__ = ["LiveSink", "LiveTracking", "open_tracking", "row_values"]
