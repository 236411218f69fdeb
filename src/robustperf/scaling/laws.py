"""Scaling laws as frozen objects with named parameters (paper symbols) and ``__call__``.

- `PowerLaw`: y = C x^alpha (Debenedetti et al. 2023, papers/002 Sec. 3.2).
- `ChinchillaLaw`: L = A/N^alpha + B/D^beta + E (Hoffmann et al. 2022).
- `Approach2Law`: L = A/N^alpha + B'/D^beta + E' with quality-dependent B', E' (papers/001 Eq. 3).
- `Approach3Law`: L = A/N^alpha + (B/D + (Q/Quality)^(kappa/beta))^beta + E' (papers/001 Eq. 5).
- `LinearMap`: accuracy = slope * L + intercept (papers/001 App. F.2.2).
- `Approach1Law`: N*, D*, L* as power laws of compute C (papers/001 App. F.1).

Quality = 1/FID, so log(1 + 1/Quality) = log(1 + FID) and Q/Quality = Q * FID (REFERENCE.md s.4).

The loss laws L(N, D[, FID]) share one interface, `SurfaceLaw`: ``fit`` (a classmethod that returns a
`FitResult`), ``predict`` (= ``__call__``), ``ceiling`` (the loss as N, D -> infinity) and ``allocate``
(the compute-optimal N*, D* at a budget). Allocation, forecasts, ``robustperf fit`` and a study's
``fit.surface`` reach a law only through it, so a new loss law is one file with a `SurfaceLaw` subclass
plus its ``LAWS.register`` line in `robustperf.scaling.catalogue`. A law fitted from a table has a
``fit_table`` classmethod (what ``robustperf fit --law NAME`` calls); `FIT_LAWS` are the registered
laws that have one.
The registry (`LAWS`, `create_law`) lives in `robustperf.scaling.law_registry`; the registration lines
are in `robustperf.scaling.catalogue`.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from robustperf.scaling.errors import ScalingError

if TYPE_CHECKING:
    from robustperf.scaling.envelope import Best, Binning
    from robustperf.scaling.fit import FitOptions
    from robustperf.scaling.result import FitResult
    from robustperf.scaling.tables import TableColumns

ArrayLike = Any  # float or numpy array; laws broadcast like numpy
__all__ = ["AdditiveLaw", "Allocation", "Approach1Law", "Approach2Law", "Approach3Law", "ChinchillaLaw", "LinearMap", "PowerLaw",
           "ScalingError", "SurfaceLaw", "fit_option_names"]


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
class Allocation:
    """Compute-optimal split of a budget.

    Attributes:
        flops: the budget C.
        N: optimal parameters N*.
        D: optimal training samples D*.
        loss: predicted loss at (N*, D*).
        a, b: local exponents d log N*/d log C and d log D*/d log C (constant for Approach 2).
        k: FLOPs per parameter per sample used (C = k N D).
    """

    flops: float
    N: float
    D: float
    loss: float
    a: float
    b: float
    k: float


def check_budget(flops: float, k: float) -> None:
    """Refuse a budget that is not a positive finite number of FLOPs, or a k <= 0."""
    if not np.isfinite(flops) or flops <= 0:
        raise ScalingError(f"the FLOPs budget must be a positive number, got {flops}")
    if k <= 0:
        raise ScalingError(f"FLOPs per parameter per sample must be > 0, got {k}")


def fit_option_names(law: type) -> frozenset[str]:
    """The keyword options a registered law's ``fit_table`` accepts (its own and its ``fit``'s)."""
    names: set[str] = set()
    for method in (getattr(law, "fit_table", None), getattr(law, "fit", None)):
        if method is None:
            continue
        for p in inspect.signature(method).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                names.add(p.name)
    return frozenset(names)


@dataclass(frozen=True)
class SurfaceLaw(_LawBase, ABC):
    """A loss law L(N, D[, FID]) of N parameters trained on D samples of data at a FID: the interface.

    A subclass gives ``__call__`` (the loss), ``ceiling`` and the classmethod ``fit``; ``allocate``
    defaults to a numerical minimisation along k N D = C (override it with a closed form where one
    exists), and ``fit_table`` reads the n, d, loss (and fid) columns of a table for ``fit``.
    """

    uses_fid: ClassVar[bool] = True  # False: the law has no FID terms, and its fit takes no FID column
    study_surface: ClassVar[bool] = True  # a study may fit it to its runs (one data set, FID 0)

    @abstractmethod
    def __call__(self, N: ArrayLike, D: ArrayLike, fid: ArrayLike = 0.0) -> ArrayLike:
        """The loss of N parameters trained on D samples of data at a FID."""

    def predict(self, N: ArrayLike, D: ArrayLike, fid: ArrayLike = 0.0) -> ArrayLike:
        """The loss at (N, D, FID); the same as calling the law."""
        return self(N, D, fid)

    @abstractmethod
    def ceiling(self, fid: float = 0.0) -> float:
        """The loss as N, D -> infinity at a FID: the best any budget reaches (it caps the accuracy)."""

    def allocate(self, flops: float, *, k: float, fid: float = 0.0) -> Allocation:
        """N*, D* minimising the loss subject to k N D = flops, found numerically.

        A bounded 1-D minimisation over log N (papers/001 App. F.3.2 uses fsolve on the same problem);
        the local exponent a = d log N*/d log C comes from a small step in log C.
        """
        check_budget(flops, k)
        n_opt = self._optimal_n(flops, fid, k)
        d_opt = flops / (k * n_opt)
        h = 1e-3
        n_up = self._optimal_n(flops * np.exp(h), fid, k)
        a = float((np.log(n_up) - np.log(n_opt)) / h)
        return Allocation(flops, n_opt, float(d_opt), float(self(n_opt, d_opt, fid)), a, 1.0 - a, k)

    def _optimal_n(self, flops: float, fid: float, k: float) -> float:
        from scipy.optimize import minimize_scalar

        log_nd = np.log(flops / k)

        def loss_of(log_n: float) -> float:
            return float(self(np.exp(log_n), np.exp(log_nd - log_n), fid))

        # The optimum lies strictly inside (1 parameter, nd parameters); bounded Brent on log N.
        res = minimize_scalar(loss_of, bounds=(0.0, log_nd), method="bounded", options={"xatol": 1e-10})
        return float(np.exp(res.x))

    @classmethod
    @abstractmethod
    def fit(cls, N: ArrayLike, D: ArrayLike, L: ArrayLike, fid: ArrayLike | None = None, *, bootstrap: int = 0,
            seed: int = 0) -> FitResult:
        """Fit the law to runs (N, D, adversarial loss L and the FID of each run's data; None: FID 0).

        A subclass may take more keyword options (e.g. ``drop_underfit``); `fit_table` forwards them.
        """

    @classmethod
    def fit_table(cls, source: Any, columns: TableColumns, **options: Any) -> FitResult:
        """Fit the law to a table or runs directory, reading the columns ``columns`` names."""
        from robustperf.scaling.tables import column, fid_column, rows_of

        frame = rows_of(source)
        fid = fid_column(frame, columns.fid) if cls.uses_fid else None
        return cls.fit(column(frame, columns.n), column(frame, columns.d), column(frame, columns.loss), fid,
                       **options)


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

    @classmethod
    def fit_table(cls, source: Any, columns: TableColumns, *, n_bins: int = 19, binning: Binning = "log",
                  best: Best = "max", min_y: float | None = None, envelope: bool = True, bootstrap: int = 0,
                  seed: int = 0) -> FitResult:
        """The envelope power law of column y against column x (papers/002 Sec. 3.2).

        The x column's FLOP unit is recorded (``law_kwargs["x_unit"]``), so a forecast converts a budget in
        FLOPs or refuses (issue 27).
        """
        from robustperf.scaling.envelope import fit_envelope_power_law
        from robustperf.scaling.tables import column, refuse_percent, rows_of, x_unit_of

        frame = rows_of(source)
        y = column(frame, columns.y)
        refuse_percent(y, columns.y)
        res = fit_envelope_power_law(column(frame, columns.x), y, n_bins=n_bins, binning=binning, best=best,
                                     min_y=min_y, envelope=envelope, bootstrap=bootstrap, seed=seed)
        unit = x_unit_of(columns.x)
        return replace(res, metrics=res.metrics.with_(x_column=columns.x),
                       law_kwargs={**res.law_kwargs, **({"x_unit": unit} if unit else {})})


class AdditiveLaw(SurfaceLaw):
    """A law of the form L = A/N^alpha + B'/D^beta + E', its terms (A, B', E') at a FID given by `terms`:
    the loss, the ceiling E' and the closed-form allocation follow from them (Chinchilla, Approach 2).

    Not a dataclass itself: a subclass declares ``alpha``, ``beta`` and its own fields."""

    alpha: float
    beta: float

    @abstractmethod
    def terms(self, fid: ArrayLike = 0.0) -> tuple[Any, Any, Any]:
        """(A, B', E') at a FID."""

    def __call__(self, N: ArrayLike, D: ArrayLike, fid: ArrayLike = 0.0) -> ArrayLike:
        A, B, E = self.terms(fid)
        N = np.asarray(N, dtype=float)
        D = np.asarray(D, dtype=float)
        return A / N**self.alpha + B / D**self.beta + E

    def ceiling(self, fid: float = 0.0) -> float:
        """E': the loss as N, D -> infinity at a FID."""
        return float(self.terms(fid)[2])

    def allocate(self, flops: float, *, k: float, fid: float = 0.0) -> Allocation:
        """The closed form of papers/001 Sec. 3.2.2 (`_closed_form`), with B' at the FID."""
        return _closed_form(self, flops, fid, k)


def _closed_form(law: AdditiveLaw, flops: float, fid: float, k: float) -> Allocation:
    """N*, D* of an A/N^alpha + B'/D^beta + E' law (papers/001 Sec. 3.2.2).

    G = (alpha A / (beta B'))^(1/(alpha+beta)), N* = G (C/k)^a, D* = (C/k)^b / G with
    a = beta/(alpha+beta), b = alpha/(alpha+beta).
    """
    check_budget(flops, k)
    A, B, _ = law.terms(fid)
    alpha, beta = law.alpha, law.beta
    if alpha <= 0 or beta <= 0:
        raise ScalingError(f"compute-optimal sizes need alpha, beta > 0, got {alpha}, {beta}")
    g = (alpha * A / (beta * float(B))) ** (1.0 / (alpha + beta))
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    nd = flops / k
    n_opt, d_opt = g * nd**a, nd**b / g
    return Allocation(flops, float(n_opt), float(d_opt), float(law(n_opt, d_opt, fid)), a, b, k)


@dataclass(frozen=True)
class ChinchillaLaw(AdditiveLaw):
    """L = A / N^alpha + B / D^beta + E (Hoffmann et al. 2022)."""

    A: float
    B: float
    E: float
    alpha: float
    beta: float
    source: str = ""
    param_names: ClassVar[tuple[str, ...]] = ("A", "B", "E", "alpha", "beta")
    uses_fid: ClassVar[bool] = False

    def terms(self, fid: ArrayLike = 0.0) -> tuple[float, float, float]:
        """(A, B', E') at a FID (no quality dependence here)."""
        return self.A, self.B, self.E

    @classmethod
    def fit(cls, N: ArrayLike, D: ArrayLike, L: ArrayLike, fid: ArrayLike | None = None, *, bootstrap: int = 0,
            seed: int = 0, drop_underfit: bool = False, grid: Mapping[str, Sequence[float]] | None = None,
            options: FitOptions | None = None) -> FitResult:
        """`robustperf.scaling.fit.fit_chinchilla`; ``fid`` must be None or 0 (the law has no FID terms)."""
        from robustperf.scaling.fit import fit_chinchilla

        if fid is not None and np.any(np.asarray(fid, dtype=float) != 0):
            raise ScalingError("the chinchilla law has no FID terms: fit approach2 or approach3 to runs on synthetic data")
        return fit_chinchilla(N, D, L, drop_underfit=drop_underfit, grid=grid, bootstrap=bootstrap, seed=seed,
                              options=options)


@dataclass(frozen=True)
class Approach2Law(AdditiveLaw):
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

    @classmethod
    def fit(cls, N: ArrayLike, D: ArrayLike, L: ArrayLike, fid: ArrayLike | None = None, *, bootstrap: int = 0,
            seed: int = 0, reference_fid: float | None = None, base_mask: ArrayLike | None = None,
            joint: bool = False, drop_underfit: bool = False, grid: Mapping[str, Sequence[float]] | None = None,
            quality_grid: Mapping[str, Sequence[float]] | None = None, options: FitOptions | None = None
            ) -> FitResult:
        """`robustperf.scaling.fit.fit_approach2`."""
        from robustperf.scaling.fit import fit_approach2

        return fit_approach2(N, D, L, fid, reference_fid=reference_fid, base_mask=base_mask, joint=joint,
                             drop_underfit=drop_underfit, grid=grid, quality_grid=quality_grid, bootstrap=bootstrap,
                             seed=seed, options=options)


@dataclass(frozen=True)
class Approach3Law(SurfaceLaw):
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
    study_surface: ClassVar[bool] = False  # Q, kappa and eps need runs at several FIDs, which a study's are not

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

    def ceiling(self, fid: float = 0.0) -> float:
        """E' + (Q FID)^kappa: the loss as N, D -> infinity at a FID."""
        return float(self.ceiling_loss(fid))

    @classmethod
    def fit(cls, N: ArrayLike, D: ArrayLike, L: ArrayLike, fid: ArrayLike | None = None, *, bootstrap: int = 0,
            seed: int = 0, drop_underfit: bool = False, grid: Mapping[str, Sequence[float]] | None = None,
            options: FitOptions | None = None) -> FitResult:
        """`robustperf.scaling.fit.fit_approach3` (its N* has no closed form: `allocate` is numerical)."""
        from robustperf.scaling.fit import fit_approach3

        return fit_approach3(N, D, L, fid, drop_underfit=drop_underfit, grid=grid, bootstrap=bootstrap, seed=seed,
                             options=options)


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

    @classmethod
    def fit_table(cls, source: Any, columns: TableColumns, *, bootstrap: int = 0, seed: int = 0) -> FitResult:
        """The line from the loss column to the accuracy column y (papers/001 App. F.2.2)."""
        from robustperf.scaling.regression import fit_loss_to_accuracy
        from robustperf.scaling.tables import column, refuse_percent, rows_of

        frame = rows_of(source)
        y = column(frame, columns.y)
        refuse_percent(y, columns.y)
        return fit_loss_to_accuracy(column(frame, columns.loss), y, bootstrap=bootstrap, seed=seed)


@dataclass(frozen=True)
class Approach1Law(_LawBase):
    """Bartoldson et al. 2024 Approach 1 (papers/001 App. F.1): N* = N_coef C^a, D* = D_coef C^b, L* = L_coef C^l.

    Read off the envelope of training curves, so it gives the compute-optimal sizes and loss directly.
    """

    a: float
    N_coef: float
    b: float
    D_coef: float
    l_exponent: float
    L_coef: float
    source: str = ""
    param_names: ClassVar[tuple[str, ...]] = ("a", "N_coef", "b", "D_coef", "l_exponent", "L_coef")

    def __call__(self, flops: ArrayLike) -> ArrayLike:
        """L*: the compute-optimal loss at a budget of FLOPs."""
        return self.L_coef * np.power(np.asarray(flops, dtype=float), self.l_exponent)

    @classmethod
    def fit_table(cls, source: Any, columns: TableColumns, *, n_queries: int = 1000, bootstrap: int = 0,
                  seed: int = 0) -> FitResult:
        """Fit training curves: a runs directory (read with `load_curves`) or a table with one row per evaluation."""
        from robustperf.scaling.envelope import fit_approach1
        from robustperf.scaling.tables import column, curves_of

        frame, cols = curves_of(source, columns)
        return fit_approach1(frame[cols.run].to_numpy(), column(frame, cols.n), column(frame, cols.x),
                             column(frame, cols.loss), column(frame, cols.d), n_queries=n_queries,
                             bootstrap=bootstrap, seed=seed)
