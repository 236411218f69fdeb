"""`runs export --to csv|parquet`: two tables any tool reads, rewritten whole (so a second export adds nothing).

``runs.<ext>``: one row per run (run_id, status, ``config.*`` parameters, ``final/*``, ``best/*``, ``cost/*``).
``metrics.<ext>``: one row per logged number (run_id, step, key, value), the metrics by step.
"""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path
from typing import Any, Literal

from robustperf.store import schema
from robustperf.store.io import write_bytes_atomic
from robustperf.tracking.source import RunExport

log = logging.getLogger(__name__)

TableFormat = Literal["csv", "parquet"]


def runs_frame(runs: list[RunExport]) -> Any:  # -> pandas.DataFrame
    """One row per run."""
    import pandas as pd

    rows = [{schema.RUN_ID: r.run_id, schema.STATUS: r.status, "fingerprint": r.fingerprint,
             **{f"{schema.CONFIG_PREFIX}{k}": v for k, v in r.params.items()}, **r.summary} for r in runs]
    return pd.DataFrame(rows)


def metrics_frame(runs: list[RunExport]) -> Any:  # -> pandas.DataFrame
    """One row per (run, key, step) value, in run, key and step order."""
    import pandas as pd

    rows = [(r.run_id, step, key, value) for r in runs for key in sorted(r.series) for step, value in r.series[key]]
    return pd.DataFrame(rows, columns=[schema.RUN_ID, "step", "key", "value"])


def _encode(frame: Any, fmt: TableFormat) -> bytes:
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    buffer = io.BytesIO()
    # parameters mix types across runs (an int width here, a string there): store them as text, like MLflow
    frame = frame.astype({c: "string" for c in frame.columns if c.startswith(schema.CONFIG_PREFIX)})
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def export_table(runs: list[RunExport], out_dir: str | Path, fmt: TableFormat = "csv",
                 report: str | Path | None = None) -> list[Path]:
    """Write ``runs.<fmt>`` and ``metrics.<fmt>`` into `out_dir` (replacing earlier ones); the paths written.

    Args:
        runs: what to export (see `read_runs`).
        out_dir: folder for the tables.
        fmt: "csv" or "parquet" (needs pyarrow: ``pip install robustperf[report]``).
        report: a report folder (robustperf report) copied to ``out_dir/report``.
    """
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError("Parquet export needs pyarrow: pip install 'robustperf[report]'") from None
    out = Path(out_dir)
    written = []
    for name, frame in (("runs", runs_frame(runs)), ("metrics", metrics_frame(runs))):
        path = out / f"{name}.{fmt}"
        write_bytes_atomic(path, _encode(frame, fmt))
        written.append(path)
    if report is not None:
        target = out / "report"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(report, target)
        written.append(target)
    log.info("exported %d runs to %s", len(runs), out)
    return written


__all__ = ["TableFormat", "export_table", "metrics_frame", "runs_frame"]
