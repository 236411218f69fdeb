"""Read fitting inputs from run records or any table a user brings (CSV, Parquet, DataFrame).

Run directories are read through the store's index (flat columns like ``final.robust_acc``,
``cost.train_flops``); `STORE_COLUMNS` names the defaults the CLI uses for them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from robustperf.scaling.errors import ScalingError
from robustperf.scaling.law_registry import LAWS, law_class
from robustperf.store import schema
from robustperf.store.schema import COST, FINAL

log = logging.getLogger(__name__)

# Default columns of the run index (robustperf.store.load_index_frame), declared in robustperf.store.schema.
STORE_COLUMNS: dict[str, str] = {
    "flops": COST.train_flops,
    "robust_acc": schema.ROBUST_ACC,  # the run's one robust accuracy (store/robust.py, issue 27)
    "clean_acc": schema.ROBUST_CLEAN_ACC,
    "loss": FINAL.adv_loss,
    "n_params": FINAL.n_params,
    "samples": FINAL.samples_seen,
    "fid": schema.CONFIG_SYNTHETIC_FID,
    "energy_kwh": COST.energy_kwh,
    "co2_kg": COST.co2_kg,
    "usd": COST.usd,
}


def load_table(source: Any) -> Any:
    """A pandas DataFrame from a DataFrame, a CSV/Parquet file, or a runs directory (finished runs only).

    Raises:
        FileNotFoundError: the path does not exist.
        ScalingError: an unsupported file type.
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path} (give a CSV, a Parquet file or a runs directory)")
    if path.is_dir():
        from robustperf.store import load_index_frame

        frame = load_index_frame(path)
        if schema.STATUS in frame.columns:
            frame = frame[frame[schema.STATUS] == "finished"]
        return frame.reset_index(drop=True)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".json":
        return pd.read_json(path)
    raise ScalingError(f"unsupported table {path.name!r}: use .csv, .parquet or a runs directory")


def column(frame: Any, name: str) -> np.ndarray:
    """One column as floats; a missing column names the available ones."""
    if name not in frame.columns:
        raise ScalingError(f"column {name!r} not in the table; available: {sorted(map(str, frame.columns))}")
    return frame[name].astype(float).to_numpy()


@dataclass(frozen=True)
class TableColumns:
    """The columns a law is fitted on (defaults: the run index's, `STORE_COLUMNS`).

    Attributes:
        x: compute (power_law, approach1 on a table).
        y: accuracy or error (power_law, linear).
        n, d, loss, fid: parameters, training samples, adversarial loss and FID of the data (L(N, D) laws).
        run: run id of a training-curve row (approach1 on a table).
    """

    x: str = STORE_COLUMNS["flops"]
    y: str = STORE_COLUMNS["robust_acc"]
    n: str = STORE_COLUMNS["n_params"]
    d: str = STORE_COLUMNS["samples"]
    loss: str = STORE_COLUMNS["loss"]
    fid: str = STORE_COLUMNS["fid"]
    run: str = "run_id"


def fit_laws() -> tuple[str, ...]:
    """The registered laws that can be fitted to a table (those with a ``fit_table``), plug-ins included."""
    return tuple(name for name in LAWS.names() if isinstance(LAWS.get(name), type)
                 and callable(getattr(LAWS.get(name), "fit_table", None)))


def study_surfaces() -> tuple[str, ...]:
    """The registered L(N, D) laws a study's ``fit.surface`` may name: the `SurfaceLaw` classes (each says with its
    ``study_surface`` whether one data set at FID 0 can fit it)."""
    return tuple(name for name in LAWS.names() if isinstance(LAWS.get(name), type)
                 and getattr(LAWS.get(name), "study_surface", False) is True)


def __getattr__(name: str) -> Any:
    if name == "FIT_LAWS":  # read from the registry when asked, so a law registered later is in it
        return fit_laws()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def rows_of(source: Any) -> Any:
    """`load_table`, refusing a table without rows."""
    frame = load_table(source)
    if len(frame) == 0:
        raise ScalingError(f"no rows to fit in {source!r}")
    return frame


_FLOP_UNITS = {"PFLOP": 1e15, "TFLOP": 1e12, "GFLOP": 1e9, "FLOP": 1.0}


def x_unit_of(column: str) -> str:
    """The FLOP unit a column name states ("train_tflops" -> "TFLOP"), or "" when it names none."""
    name = column.upper()
    return next((unit for unit in _FLOP_UNITS if unit in name), "")


def load_curves(runs_dir: str | Path) -> Any:
    """Training curves of every run: one row per per-epoch evaluation in ``metrics.jsonl``.

    Columns: run_id, epoch, samples_seen, flops (samples_seen x the record's ``cost.flops_per_sample``),
    adv_loss, robust_acc, clean_acc, n_params, fid (the run's ``data.synthetic_fid``, 0 for real data).
    Runs without a cost block or without evaluations are skipped, and so (with a warning naming it) is a run
    whose record is damaged. This is Approach 1's input.
    """
    import pandas as pd

    from robustperf.store.index import iter_run_dirs
    from robustperf.store.metrics_rows import EvalRow

    rows = []
    for rd in iter_run_dirs(runs_dir):
        try:
            record = rd.read_record()
            per_sample = record.cost.get("flops_per_sample") if record else None
            if not per_sample:
                continue
            fid = (rd.read_config().get("data") or {}).get("synthetic_fid") or 0.0
        except ValueError as exc:  # a damaged or wrong-shaped record (DamagedFileError): that run only
            log.warning("skipping run %s: %s", rd.run_id, exc)
            continue
        n_params = record.final.get("n_params") if record else None
        for m in rd.read_metric_rows():
            if not isinstance(m, EvalRow) or not m.samples_seen:
                continue
            rows.append({"run_id": rd.run_id, "epoch": m.epoch, "samples_seen": m.samples_seen,
                         "flops": float(m.samples_seen) * float(per_sample), "adv_loss": m.adv_loss,
                         "robust_acc": m.robust_acc, "clean_acc": m.clean_acc,
                         "n_params": m.n_params if m.n_params is not None else n_params, "fid": float(fid)})
    return pd.DataFrame(rows, columns=["run_id", "epoch", "samples_seen", "flops", "adv_loss", "robust_acc",
                                       "clean_acc", "n_params", "fid"])


def fid_column(frame: Any, name: str) -> np.ndarray:
    """FID per row; a missing column or an empty cell means real data, FID 0."""
    if name not in frame.columns:
        log.info("no column %r: treating every run as FID 0 (real data)", name)
        return np.zeros(len(frame))
    return frame[name].astype(float).fillna(0.0).to_numpy()


def fit_table(source: Any, law: str, *, x: str = STORE_COLUMNS["flops"], y: str = STORE_COLUMNS["robust_acc"],
              n: str = STORE_COLUMNS["n_params"], d: str = STORE_COLUMNS["samples"], loss: str = STORE_COLUMNS["loss"],
              fid: str = STORE_COLUMNS["fid"], run: str = "run_id", **fit_kwargs: Any) -> Any:
    """Fit a registered law to a table or a runs directory, naming the columns (defaults: the run index's).

    Args:
        source: DataFrame, CSV/Parquet path, or runs directory (`load_table`).
        law: a name of `fit_laws()`: "power_law" (envelope of y vs x), "linear" (y vs loss), "chinchilla",
            "approach2", "approach3" (loss vs n, d and, for the last two, fid), "approach1" (training curves:
            one row per evaluation, grouped by ``run``; a runs directory is read with `load_curves`), or a
            plug-in law's name.
        x, y, n, d, loss, fid, run: column names (`TableColumns`).
        **fit_kwargs: forwarded to the law's ``fit_table`` (e.g. ``bootstrap=1000``, ``n_bins=19``,
            ``drop_underfit=True``).

    Returns:
        The fitter's `FitResult`.
    """
    names = fit_laws()
    if law not in names:
        raise ScalingError(f"unknown law {law!r} to fit; choose one of {', '.join(names)}")
    columns = TableColumns(x=x, y=y, n=n, d=d, loss=loss, fid=fid, run=run)
    return law_class(law).fit_table(source, columns, **fit_kwargs)  # type: ignore[attr-defined]


def refuse_percent(values: Any, name: str) -> None:
    """An accuracy column in percent would fit a law that forecasts 100 % everywhere: refuse it with the fix."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if "acc" in name.lower() and finite.size and finite.max() > 1.0:
        raise ScalingError(f"column {name!r} has values up to {finite.max():.4g}: accuracies in percent? Divide it "
                           "by 100 (the laws take fractions)")


def curves_of(source: Any, columns: TableColumns) -> tuple[Any, TableColumns]:
    """Training curves and the columns to read them by: `load_curves` of a runs directory, else the user's table."""
    if not isinstance(source, (str, Path)) or not Path(source).is_dir():
        frame = load_table(source)
    else:
        frame = load_curves(source)
        columns = replace(columns, x="flops", n="n_params", d="samples_seen", loss="adv_loss", run="run_id")
    if len(frame) == 0:
        raise ScalingError(f"no training curves in {source!r} (runs need eval rows in metrics.jsonl and a cost block)")
    if columns.run not in frame.columns:
        raise ScalingError(f"column {columns.run!r} not in the table; available: {sorted(map(str, frame.columns))}")
    return frame, columns
