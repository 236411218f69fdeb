"""Approach-2 fit speed: robustperf's batched multi-start vs a plain scipy loop, in one process.

The baseline is what public scaling-law notebooks do: one `scipy.optimize.minimize` (L-BFGS-B,
finite-difference gradients) per start of the 3125-point grid of papers/001 App. F.2.1, best objective
kept. robustperf runs the same grid through a vectorised L-BFGS with analytic gradients, prunes, and
polishes the best optima with scipy. Both minimise the same summed Huber loss (delta 1e-3) on the same
data: a few hundred runs drawn from the published Approach 2 law with 1 % multiplicative noise.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fit_speed.py [--n-points 300] [--bootstrap 1000] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from robustperf.scaling import create_law, fit_approach2
from robustperf.scaling.fit import APPROACH2_GRID, grid_points


def make_data(n_points: int, seed: int, fids: tuple[float, ...] = (1.65,)
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs from the published law with 1 % noise; one FID is the paper's stage-1 setting."""
    rng = np.random.default_rng(seed)
    law = create_law("bartoldson2024_approach2_fid1.65")
    n = 10 ** rng.uniform(6.5, 8.7, n_points)  # 3M - 500M parameters
    d = 10 ** rng.uniform(6.5, 8.7, n_points)  # 3M - 500M samples
    fid = rng.choice(np.asarray(fids), n_points)
    loss = law(n, d, fid) * np.exp(rng.normal(0.0, 0.01, n_points))
    return n, d, fid, loss


def scipy_loop(n: np.ndarray, d: np.ndarray, loss: np.ndarray, delta: float = 1e-3) -> tuple[float, np.ndarray]:
    """Baseline: one minimize per grid start, numerical gradients; returns (best objective, params)."""
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)

    def objective(theta: np.ndarray) -> float:
        a, b, e, alpha, beta = theta
        terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
        r = np.logaddexp.reduce(terms, axis=0) - log_l
        ar = np.abs(r)
        return float(np.sum(np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))))

    best_f, best_x = np.inf, None
    for x0 in grid_points(APPROACH2_GRID, ["a", "b", "e", "alpha", "beta"]):
        res = minimize(objective, x0, method="L-BFGS-B")
        if res.fun < best_f:
            best_f, best_x = float(res.fun), res.x
    return best_f, best_x


def robustperf_objective(fit, n, d, loss, delta: float = 1e-3) -> float:
    """The same summed Huber loss evaluated at robustperf's parameters (FID shift is 0 here)."""
    p = fit.params
    pred = np.log(p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"] + p["E"])
    r = pred - np.log(loss)
    ar = np.abs(r)
    return float(np.sum(np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-points", type=int, default=300)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write a markdown summary here")
    args = parser.parse_args()

    n, d, _, loss = make_data(args.n_points, args.seed)
    lines = [f"# Approach-2 fit speed ({args.n_points} points, 3125-start grid)", "",
             f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average at start "
             f"{os.getloadavg()[0]:.2f}", ""]

    t0 = time.perf_counter()
    fit = fit_approach2(n, d, loss, 1.65)
    t_rp = time.perf_counter() - t0
    f_rp = robustperf_objective(fit, n, d, loss)
    lines.append(f"robustperf fit_approach2: {t_rp:.2f} s, objective {f_rp:.10g}, status {fit.status}")

    if not args.skip_baseline:
        t0 = time.perf_counter()
        f_sp, _ = scipy_loop(n, d, loss)
        t_sp = time.perf_counter() - t0
        lines.append(f"scipy loop (3125 x minimize, numerical gradients): {t_sp:.2f} s, objective {f_sp:.10g}")
        lines.append(f"speed-up: {t_sp / t_rp:.1f}x; objective robustperf - scipy = {f_rp - f_sp:+.3e} "
                     f"({'at least as low' if f_rp <= f_sp * (1 + 1e-9) else 'HIGHER'})")

    if args.bootstrap:
        t0 = time.perf_counter()
        boot = fit_approach2(n, d, loss, 1.65, bootstrap=args.bootstrap, seed=args.seed)
        t_boot = time.perf_counter() - t0 - t_rp  # the fit itself is repeated inside; report the resampling part
        b = boot.bootstrap
        lines.append(f"bootstrap: {args.bootstrap} resamples in {t_boot:.2f} s (fit + bootstrap "
                     f"{t_boot + t_rp:.2f} s), {b.n_failed} failed")
        for k in ("A", "B", "E", "alpha", "beta"):
            lo, hi = b.interval(k)
            lines.append(f"  {k}: {boot.params[k]:.4g} [{lo:.4g}, {hi:.4g}] (95 %)")
        # Both stages (A, B, E, alpha, beta on the FID-1.65 runs, then eps, zeta on the others).
        n2, d2, fid2, loss2 = make_data(args.n_points, args.seed, fids=(1.65, 1.65, 5.0, 10.0, 20.0))
        t0 = time.perf_counter()
        two = fit_approach2(n2, d2, loss2, fid2, bootstrap=args.bootstrap, seed=args.seed)
        t_two = time.perf_counter() - t0
        lines.append(f"two-stage fit (5 FIDs, eps and zeta too) + {args.bootstrap} bootstrap resamples: "
                     f"{t_two:.2f} s in total, {two.bootstrap.n_failed} failed, status {two.status}")
        for k in ("eps", "zeta"):
            lo, hi = two.bootstrap.interval(k)
            lines.append(f"  {k}: {two.params[k]:.4g} [{lo:.4g}, {hi:.4g}] (95 %)")
    lines.append(f"load average at end: {os.getloadavg()[0]:.2f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
