"""Vectorised fitting objectives with analytic gradients (papers/001 App. F.2-F.3).

Each objective takes a batch of parameter rows (S, P) and returns the summed Huber loss on
log-residuals and its gradient. Summed, not averaged: averaging made L-BFGS stop early in the original
Chinchilla fit (Besiroglu et al. 2024; REFERENCE.md s.4). Optional per-row point weights (S, n) turn
one data set into many bootstrap resamples evaluated in the same call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robustperf.scaling.optimize import huber

# Approach 2 in log space: theta = (a, b, e, alpha, beta, eps, zeta), a = log A, b = log B, e = log E
# at the reference FID; log L_hat = logsumexp(a - alpha log N, b + zeta s - beta log D, e + eps s).
A2_NAMES = ("a", "b", "e", "alpha", "beta", "eps", "zeta")


@dataclass(frozen=True)
class Approach2Objective:
    """Huber loss of Approach 2 (Chinchilla when eps = zeta = 0) over a data set.

    Attributes:
        log_n, log_d, log_l: logs of parameters, samples and loss, shape (n,).
        shift: log(1 + FID) - log(1 + FID_ref), shape (n,).
        free: indices into `A2_NAMES` of the parameters being fitted.
        base: (S_total, 7) full parameter rows; free columns are overwritten by the optimiser.
        weights: (S_total, n) point weights per row (bootstrap counts), or None for all ones.
        delta: Huber delta.
    """

    log_n: np.ndarray
    log_d: np.ndarray
    log_l: np.ndarray
    shift: np.ndarray
    free: tuple[int, ...]
    base: np.ndarray
    weights: np.ndarray | None = None
    delta: float = 1e-3

    def full(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        theta = self.base[rows % len(self.base)].copy()
        theta[:, list(self.free)] = x
        return theta

    def predict_log(self, theta: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """log L_hat (S, n) and the softmax weights of the three terms (three (S, n) arrays)."""
        a, b, e, alpha, beta, eps, zeta = (theta[:, i : i + 1] for i in range(7))
        # Three separate (S, n) arrays: reductions over a trailing axis of length 3 are slow in numpy.
        t1 = a - alpha * self.log_n
        t2 = (b + zeta * self.shift) - beta * self.log_d
        t3 = np.broadcast_to(e + eps * self.shift, t1.shape)
        m = np.maximum(np.maximum(t1, t2), t3)
        e1, e2, e3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(t3 - m)
        z = e1 + e2 + e3
        return m + np.log(z), (e1 / z, e2 / z, e3 / z)

    def __call__(self, x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(all="ignore"):  # overflowing trial steps become inf and the line search backs off
            f, grad = self._evaluate(x, rows)
        bad = ~np.isfinite(f) | ~np.all(np.isfinite(grad), axis=1)
        return np.where(bad, np.inf, f), np.where(np.isfinite(grad), grad, 0.0)

    def _evaluate(self, x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = self.full(x, rows)
        lse, (p1, p2, p3) = self.predict_log(theta)
        loss, dr = huber(lse - self.log_l, self.delta)
        if self.weights is not None:
            w = self.weights[rows]
            loss, dr = loss * w, dr * w
        # d loss / d theta_j = sum_i dr_i * d lse_i / d theta_j.
        g1, g2, g3 = dr * p1, dr * p2, dr * p3
        columns = {
            0: lambda: g1.sum(axis=1),
            1: lambda: g2.sum(axis=1),
            2: lambda: g3.sum(axis=1),
            3: lambda: -(g1 @ self.log_n),
            4: lambda: -(g2 @ self.log_d),
            5: lambda: g3 @ self.shift,
            6: lambda: g2 @ self.shift,
        }
        grad = np.stack([columns[j]() for j in self.free], axis=1)
        return loss.sum(axis=1), grad


A3_NAMES = ("A", "B", "E", "Q", "alpha", "beta", "kappa", "eps")


@dataclass(frozen=True)
class Approach3Objective:
    """Huber loss on log L_hat - log L for Approach 3 (no log re-parameterisation, App. F.3.1).

    Infeasible rows (non-positive A, B, Q, beta, kappa or loss) return inf so the line search backs off.
    """

    n: np.ndarray
    d: np.ndarray
    fid: np.ndarray
    log_l: np.ndarray
    weights: np.ndarray | None = None
    delta: float = 1e-3

    def predict(self, theta: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """L_hat (S, n) and its partial derivatives w.r.t. each parameter (list of (S, n))."""
        A, B, E, Q, alpha, beta, kappa, eps = (theta[:, i : i + 1] for i in range(8))
        log_n = np.log(self.n)
        n_term = A * np.exp(-alpha * log_n)
        qf = Q * self.fid
        pos = qf > 0
        log_q = np.log(np.where(pos, qf, 1.0))
        w = np.where(pos, np.exp(kappa / beta * log_q), 0.0)  # (Q FID)^(kappa/beta)
        u = B / self.d + w
        log_u = np.log(u)
        t2 = np.exp(beta * log_u)
        u_bm1 = t2 / u  # u^(beta - 1)
        l1p = np.log1p(self.fid)
        pred = n_term + t2 + E + eps * l1p
        partials = [
            n_term / A,
            beta * u_bm1 / self.d,
            np.ones_like(pred),
            np.where(pos, u_bm1 * kappa * w / Q, 0.0),
            -n_term * log_n,
            t2 * log_u - u_bm1 * w * log_q * kappa / beta,
            u_bm1 * w * log_q,
            np.broadcast_to(l1p, pred.shape),
        ]
        return pred, partials

    def __call__(self, x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(all="ignore"):
            feasible = np.all(x[:, [0, 1, 3, 5, 6]] > 0, axis=1)
            pred, partials = self.predict(x)
            feasible &= np.all(np.isfinite(pred) & (pred > 0), axis=1)
            loss, dr = huber(np.log(pred) - self.log_l, self.delta)
            if self.weights is not None:
                w = self.weights[rows]
                loss, dr = loss * w, dr * w
            scale = dr / pred
            grad = np.stack([np.einsum("sn,sn->s", scale, p) for p in partials], axis=1)
            f = loss.sum(axis=1)
        f = np.where(feasible & np.all(np.isfinite(grad), axis=1), f, np.inf)
        grad = np.where(np.isfinite(grad), grad, 0.0)
        return f, grad
