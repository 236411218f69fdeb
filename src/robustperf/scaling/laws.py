"""Scaling laws as frozen objects with named parameters (paper symbols) and ``__call__``.

- `PowerLaw`: y = C x^alpha (Debenedetti et al. 2023, papers/002 Sec. 3.2).
- `ChinchillaLaw`: L = A/N^alpha + B/D^beta + E (Hoffmann et al. 2022).
- `Approach2Law`: L = A/N^alpha + B'/D^beta + E' with quality-dependent B', E' (papers/001 Eq. 3).
- `Approach3Law`: L = A/N^alpha + (B/D + (Q/Quality)^(kappa/beta))^beta + E' (papers/001 Eq. 5).
- `LinearMap`: accuracy = slope * L + intercept (papers/001 App. F.2.2).

Quality = 1/FID, so log(1 + 1/Quality) = log(1 + FID) and Q/Quality = Q * FID (REFERENCE.md s.4).
The registry (`LAWS`, `create_law`) lives in `robustperf.scaling.catalogue`, which imports this module
and `robustperf.scaling.published`; neither of those imports the catalogue, so there is no cycle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import numpy as np

ArrayLike = Any  # float or numpy array; laws broadcast like numpy


class ScalingError(ValueError):
    """A user-facing problem with fitting inputs (too few points, bad columns, invalid values)."""


def _log1p_fid(fid: ArrayLike) -> np.ndarray:
    fid = np.asarray(fid, dtype=float)
    if np.any(fid < 0):
        raise ValueError("FID must be >= 0 (0 means real data of perfect quality)")
    return np.log1p(fid)


@dataclass(frozen=True)
class _LawBase:
    param_names: ClassVar[tuple[str, ...]] = ()

    @property
    def params(self) -> dict[str, float]:
        """The law's parameters by name."""
        return {k: float(getattr(self, k)) for k in self.param_names}

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PowerLaw(_LawBase):
    """y = C * x^alpha; fitted by least squares in log-log space."""

    C: float
    alpha: float
    x_unit: str = ""
    y_unit: str = ""
    source: str = ""
    param_names: ClassVar[tuple[str, ...]] = ("C", "alpha")

    def __call__(self, x: ArrayLike) -> ArrayLike:
        return self.C * np.power(np.asarray(x, dtype=float), self.alpha)

    def inverse(self, y: ArrayLike) -> ArrayLike:
        """x such that C x^alpha = y."""
        if self.alpha == 0:
            raise ValueError("a power law with alpha = 0 is constant and has no inverse")
        return np.power(np.asarray(y, dtype=float) / self.C, 1.0 / self.alpha)


@dataclass(frozen=True)
class ChinchillaLaw(_LawBase):
    """L = A / N^alpha + B / D^beta + E (Hoffmann et al. 2022)."""

    A: float
    B: float
    E: float
    alpha: float
    beta: float
    source: str = ""
    param_names: ClassVar[tuple[str, ...]] = ("A", "B", "E", "alpha", "beta")

    def terms(self, fid: ArrayLike = 0.0) -> tuple[float, float, float]:
        """(A, B', E') at a FID (no quality dependence here)."""
        return self.A, self.B, self.E

    def __call__(self, N: ArrayLike, D: ArrayLike, fid: ArrayLike = 0.0) -> ArrayLike:
        N = np.asarray(N, dtype=float)
        D = np.asarray(D, dtype=float)
        return self.A / N**self.alpha + self.B / D**self.beta + self.E


@dataclass(frozen=True)
class Approach2Law(_LawBase):
    """Bartoldson et al. 2024 Approach 2 (papers/001 Eq. 3, App. F.2).

    L = A/N^alpha + B'/D^beta + E', B' = B exp(zeta s), E' = E exp(eps s),
    s = log(1 + FID) - log(1 + fid_ref). ``B`` and ``E`` are the values at ``fid_ref``: the paper
    reports them at FID 0 (``fid_ref = 0``); the authors' notebook prints them at FID 1.65.
    """

    A: float
    B: float
    E: float
    alpha: float
    beta: float
    eps: float = 0.0
    zeta: float = 0.0
    fid_ref: float = 0.0
    source: str = ""
    param_names: ClassVar[tuple[str, ...]] = ("A", "B", "E", "alpha", "beta", "eps", "zeta")

    def _shift(self, fid: ArrayLike) -> np.ndarray:
        return _log1p_fid(fid) - float(np.log1p(self.fid_ref))

    def terms(self, fid: ArrayLike = 0.0) -> tuple[Any, Any, Any]:
        """(A, B', E') at a FID."""
        s = self._shift(fid)
        return self.A, self.B * np.exp(self.zeta * s), self.E * np.exp(self.eps * s)

    def at_reference(self, fid_ref: float) -> Approach2Law:
        """The same law with B and E expressed at another reference FID (0 = the paper's convention)."""
        _, b, e = self.terms(fid_ref)
        return replace(self, B=float(b), E=float(e), fid_ref=float(fid_ref))

    def __call__(self, N: ArrayLike, D: ArrayLike, fid: ArrayLike = 0.0) -> ArrayLike:
        A, B, E = self.terms(fid)
        N = np.asarray(N, dtype=float)
        D = np.asarray(D, dtype=float)
        return A / N**self.alpha + B / D**self.beta + E


@dataclass(frozen=True)
class Approach3Law(_LawBase):
    """Bartoldson et al. 2024 Approach 3, the quality bottleneck (papers/001 Eq. 5, App. F.3).

    L = A/N^alpha + (B/D + (Q * FID)^(kappa/beta))^beta + E + log(1 + FID) eps.
    At FID 0 it is Chinchilla's form with B^beta in place of Approach 2's B.
    """

    A: float
    B: float
    E: float
    Q: float
    alpha: float
    beta: float
    kappa: float
    eps: float
    source: str = ""
    param_names: ClassVar[tuple[str, ...]] = ("A", "B", "E", "Q", "alpha", "beta", "kappa", "eps")

    def __call__(self, N: ArrayLike, D: ArrayLike, fid: ArrayLike = 0.0) -> ArrayLike:
        N = np.asarray(N, dtype=float)
        D = np.asarray(D, dtype=float)
        fid = np.asarray(fid, dtype=float)
        bottleneck = np.power(self.Q * fid, self.kappa / self.beta)
        data_term = np.power(self.B / D + bottleneck, self.beta)
        return self.A / N**self.alpha + data_term + self.E + _log1p_fid(fid) * self.eps

    def E_at(self, fid: ArrayLike = 0.0) -> ArrayLike:  # noqa: N802 (paper symbol)
        """E' = E + log(1 + FID) eps: the irreducible term at a FID (E itself is the FID-0 value)."""
        return self.E + _log1p_fid(fid) * self.eps

    @property
    def B_approach2(self) -> float:  # noqa: N802 (paper symbol)
        """B^beta, the value comparable to Approach 2's B at FID 0 (papers/001 App. F.3.1: 6.85)."""
        return float(self.B**self.beta)

    def ceiling_loss(self, fid: ArrayLike = 0.0) -> ArrayLike:
        """Loss as N, D -> infinity: E' + (Q FID)^kappa."""
        fid = np.asarray(fid, dtype=float)
        return self.E + _log1p_fid(fid) * self.eps + np.power(self.Q * fid, self.kappa)


@dataclass(frozen=True)
class LinearMap(_LawBase):
    """y = slope * x + intercept; e.g. adversarial loss -> AutoAttack accuracy (papers/001 App. F.2.2)."""

    slope: float
    intercept: float
    source: str = ""
    param_names: ClassVar[tuple[str, ...]] = ("slope", "intercept")

    def __call__(self, x: ArrayLike) -> ArrayLike:
        return self.slope * np.asarray(x, dtype=float) + self.intercept

    def inverse(self, y: ArrayLike) -> ArrayLike:
        return (np.asarray(y, dtype=float) - self.intercept) / self.slope
