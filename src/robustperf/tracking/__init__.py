"""Runs out to where researchers look: CSV/Parquet tables, MLflow, TensorBoard and W&B, exported or live.

    from robustperf.tracking import export_runs
    export_runs("runs", "mlflow", "file:./mlruns")      # idempotent: a second call adds nothing

Live logging is the ``tracking:`` block of a run config (`robustperf.config.TrackingConfig`), opened by
`open_tracking` in the training loop. Each tracker is an optional extra (``robustperf[mlflow]``,
``[tensorboard]``, ``[wandb]``) imported only when used.
"""

from robustperf.tracking.export import DESTINATIONS, default_target, export_runs
from robustperf.tracking.live import LiveTracking, open_tracking
from robustperf.tracking.source import RunExport, read_run, read_runs

__all__ = ["DESTINATIONS", "LiveTracking", "RunExport", "default_target", "export_runs", "open_tracking", "read_run",
           "read_runs"]
