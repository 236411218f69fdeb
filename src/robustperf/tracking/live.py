"""Live logging while a run trains: the ``tracking:`` config block turned into tracker sinks.

The training loop hands every row it writes to ``metrics.jsonl`` to `LiveTracking.log_row`; each sink
receives the row's numbers as ``train/<key>`` or ``eval/<key>`` at its step. A sink that fails to open, log
or close is logged once and dropped: a tracker never fails a run. Off by default (no block, no sinks, and
`open_tracking` returns None so the loop does nothing extra).
"""

from __future__ import annotations

import logging
import math
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


class LiveTracking:
    """The open sinks of one run."""

    def __init__(self, sinks: list[LiveSink]) -> None:
        self.sinks = list(sinks)

    def log_row(self, row: dict[str, Any]) -> None:
        parsed = row_values(row)
        if parsed is not None and parsed[0]:
            self._each("log", lambda s: s.log(*parsed))

    def close(self, status: str) -> None:
        self._each("close", lambda s: s.close(status))
        self.sinks = []

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


def open_tracking(cfg: TrackingConfig, run_id: str, resolved: dict[str, Any]) -> LiveTracking | None:
    """The sinks the block asks for (None when it asks for none); one that cannot open is logged and skipped."""
    from robustperf.store.index import flatten

    params = {k: v for k, v in flatten(resolved).items() if v is not None}
    sinks: list[LiveSink] = []
    for name, opener in _openers(cfg, run_id, params):
        try:
            sinks.append(opener())
        except Exception as exc:  # noqa: BLE001 - a tracker's failure must never fail the run
            log.warning("tracker %s could not start (%s: %s): the run goes on without it", name,
                        type(exc).__name__, " ".join(str(exc).split()))
    return LiveTracking(sinks) if sinks else None


__all__ = ["LiveSink", "LiveTracking", "open_tracking", "row_values"]
