"""Run directories whose results follow planted laws, so the report's fits can be checked against them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustperf.config import RunConfig
from robustperf.store import RunDir, RunRecord

# planted L(N, D) = A/N^alpha + B/D^beta + E and robust acc = 1.2 - 0.6 L (a line, as in papers/001 App. F.2.2)
PLANTED = {"A": 40.0, "B": 6.0, "E": 0.4, "alpha": 0.45, "beta": 0.4}
K_FLOPS = 69.0  # planted FLOPs per parameter per sample (e.g. PGD-10 on a small CNN: 23 passes x 3)


def planted_loss(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    p = PLANTED
    return p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"] + p["E"]


def write_planted_runs(runs_dir: Path, widths=(4, 8, 16, 32), n_trains=(300, 600, 1200, 2400),
                       noise: float = 0.002, seed: int = 0, failed: int = 1) -> list[str]:
    """One finished run per (width, n_train) plus `failed` failed runs; returns the run ids."""
    rng = np.random.default_rng(seed)
    ids = []
    for w in widths:
        for n_train in n_trains:
            cfg = RunConfig.model_validate({"name": "planted", "model": {"name": "tiny_cnn", "kwargs": {"width": w}},
                                            "data": {"n_train": n_train}, "optim": {"epochs": 2}})
            n_params = 1000.0 * w**1.5
            samples = 2.0 * n_train
            loss = float(planted_loss(n_params, samples) * np.exp(rng.normal(0, noise)))
            robust = 1.2 - 0.6 * loss
            flops = K_FLOPS * n_params * samples
            seconds = flops / 2e9
            rd = RunDir.for_run(runs_dir, cfg.run_id)
            rd.write_config(cfg.resolved())
            rd.write_record(RunRecord(
                run_id=cfg.run_id, status="finished",
                final={"epoch": 2, "samples_seen": samples, "n_params": n_params, "clean_acc": min(1.0, robust + 0.2),
                       "robust_acc": robust, "adv_loss": loss, "clean_loss": loss / 2, "train_loss": loss},
                cost={"train_flops": flops, "seconds": seconds, "energy_kwh": seconds * 60 / 3.6e6 * 1.58,
                      "co2_kg": seconds * 60 / 3.6e6 * 1.58 * 0.5663, "usd": seconds * 60 / 3.6e6 * 1.58 * 0.12},
                evaluations={"study": {"robust_acc": robust, "flags": ["robust_above_clean"] if w == 4 and
                                       n_train == 300 else []}}))
            ids.append(cfg.run_id)
    for i in range(failed):
        cfg = RunConfig.model_validate({"name": "planted", "model": {"kwargs": {"width": 999 + i}}})
        rd = RunDir.for_run(runs_dir, cfg.run_id)
        rd.write_config(cfg.resolved())
        rd.write_record(RunRecord(run_id=cfg.run_id, status="failed", failure_reason="TrainingError: loss is NaN"))
        ids.append(cfg.run_id)
    return ids
