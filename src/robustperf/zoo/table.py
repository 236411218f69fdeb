"""A folder of model_info JSON (RobustBench's, or written by `robustperf zoo evaluate` / `runs leaderboard-entry`)
as one table in the RobustBench leaderboard CSV's column names, so the zoo trends (`robustperf trends`,
`scaling.trends.load_zoo`) and the report's overlay (`robustperf report --overlay`) read evaluated models
the same way they read the published CSV; the cost columns come along.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


def _year(info: dict[str, Any]) -> int | None:
    """The venue's year ("ICML 2020" -> 2020), else the year the JSON was written."""
    in_venue = re.findall(r"(?:19|20)\d\d", str(info.get("venue") or ""))
    if in_venue:
        return int(in_venue[-1])
    written = re.match(r"\d{4}", str((info.get("cost") or {}).get("written_at") or ""))
    return int(written.group()) if written else None


def _row(path: Path, root: Path) -> dict[str, Any]:
    info = json.loads(path.read_text())
    rel = path.relative_to(root).parts
    cost = info.get("cost") or {}
    evaluation = cost.get("eval") or {}
    train = cost.get("train") or {}
    return {
        "dataset": info.get("dataset") or (rel[0] if len(rel) == 3 else None),
        "threat_model": rel[1] if len(rel) == 3 else None,
        "model_id": path.stem, "paper_title": info.get("name"), "authors": info.get("authors"),
        "venue": info.get("venue"), "year_venue": _year(info), "link": info.get("link"),
        "architecture": info.get("architecture"),
        "clean_acc": float(info["clean_acc"]) if info.get("clean_acc") is not None else None,
        "autoattack_acc": float(info["autoattack_acc"]) if info.get("autoattack_acc") is not None else None,
        "eps_float": info.get("eps"), "additional_data": info.get("additional_data"),
        "number_forward_passes": info.get("number_forward_passes"),
        "n_params_total": cost.get("n_params"), "fwd_flops_per_image": cost.get("forward_flops_per_image"),
        "eval_n_examples": evaluation.get("n_examples"), "eval_flops": evaluation.get("flops"),
        "eval_seconds": evaluation.get("seconds"), "eval_energy_kwh": evaluation.get("energy_kwh"),
        "eval_usd": evaluation.get("usd"), "train_flops": train.get("train_flops"),
        "train_energy_kwh": train.get("energy_kwh"), "machine": cost.get("machine"),
        "source_file": str(path),
    }


def model_info_table(root: str | Path) -> Any:  # -> pandas.DataFrame
    """One row per ``<root>/<dataset>/<threat_model>/<name>.json``, in RobustBench leaderboard columns.

    Raises:
        FileNotFoundError: no JSON under `root`.
        ValueError: a file that is not JSON (named).
    """
    import pandas as pd

    base = Path(root)
    files = sorted(base.rglob("*.json"))
    if not files:
        raise FileNotFoundError(f"no model_info JSON under {base}: write some with `robustperf zoo evaluate`")
    rows = []
    for f in files:
        try:
            rows.append(_row(f, base))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{f} is not a model_info JSON ({type(exc).__name__}: {exc}): fix or remove it") from None
    return pd.DataFrame(rows)


__all__ = ["model_info_table"]
