"""What a fit records beside its parameters, as typed fields: goodness of fit, data ranges, checks.

`FitMetrics` is the ``metrics`` of a `FitResult`. Code reads its fields (``fit.metrics.identifiability``,
``fit.metrics.y_range``); a field a fitter does not set is None. It also reads like the dict it replaced
(a `Mapping` over the fields that are set, in the JSON form a saved fit holds: nested records as dicts,
pairs as lists), so a saved fit, ``{**fit.metrics, "y_range": ...}`` and ``fit.metrics["r2"]`` work as
before; `FitMetrics.coerce` reads that form back, and keys it does not know are kept in ``extra``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

_UNSET_OK = ("reason", "level", "poorly_identified", "reasons", "n_resamples", "n_failed")


@dataclass(frozen=True)
class Identifiability:
    """Whether the data pin every parameter down (`robustperf.scaling.identify`, `earned_ok`).

    Attributes:
        checked: a check ran (a bootstrap, or the local curvature); False: nothing was checked.
        reason: why nothing was checked.
        level: interval coverage of the bootstrap check.
        poorly_identified: the parameters the data do not pin down.
        reasons: one line per problem found.
        n_resamples, n_failed: the bootstrap behind the check.

    A field left None is absent from the saved form, which has the shape each check wrote.
    """

    checked: bool
    reason: str | None = None
    level: float | None = None
    poorly_identified: tuple[str, ...] | None = None
    reasons: tuple[str, ...] | None = None
    n_resamples: int | None = None
    n_failed: int | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The poorly identified parameters (empty when none or unchecked)."""
        return self.poorly_identified or ()

    @property
    def problems(self) -> tuple[str, ...]:
        """The reasons found (empty when none)."""
        return self.reasons or ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"checked": self.checked}
        for name in _UNSET_OK:
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def coerce(cls, value: Identifiability | Mapping[str, Any]) -> Identifiability:
        if isinstance(value, Identifiability):
            return value
        pi, rs = value.get("poorly_identified"), value.get("reasons")
        return cls(checked=bool(value.get("checked", False)), reason=value.get("reason"), level=value.get("level"),
                   poorly_identified=None if pi is None else tuple(pi), reasons=None if rs is None else tuple(rs),
                   n_resamples=value.get("n_resamples"), n_failed=value.get("n_failed"))


@dataclass(frozen=True)
class EarnedOk:
    """The checks an L(N, D) fit passes to keep ``ok`` (`robustperf.scaling.earned_ok`).

    Attributes:
        checked_by: "bootstrap" or "local curvature (no bootstrap)".
        axis_spans: "N" and "D" -> largest / smallest value of the fitted runs.
        reasons: parameter -> why it is not earned (empty: every check passed).
    """

    checked_by: str
    axis_spans: Mapping[str, float]
    reasons: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"checked_by": self.checked_by, "axis_spans": dict(self.axis_spans), "reasons": dict(self.reasons)}

    @classmethod
    def coerce(cls, value: EarnedOk | Mapping[str, Any]) -> EarnedOk:
        if isinstance(value, EarnedOk):
            return value
        return cls(str(value["checked_by"]), {k: float(v) for k, v in value.get("axis_spans", {}).items()},
                   {str(k): str(v) for k, v in value.get("reasons", {}).items()})


@dataclass(frozen=True)
class LogCentre:
    """Mean log N and log D of the runs an L(N, D) law was fitted on (where A and B are judged)."""

    N: float
    D: float

    def to_dict(self) -> dict[str, float]:
        return {"N": self.N, "D": self.D}

    @classmethod
    def coerce(cls, value: LogCentre | Mapping[str, Any]) -> LogCentre:
        return value if isinstance(value, LogCentre) else cls(float(value["N"]), float(value["D"]))


Interval = tuple[float, float]


def _pair(value: Sequence[float]) -> Interval:
    lo, hi = value
    return float(lo), float(hi)


def _intervals(value: Mapping[str, Sequence[float]]) -> dict[str, Interval]:
    return {str(k): _pair(v) for k, v in value.items()}


def _floats(value: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in value)


def _ints(value: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@dataclass(frozen=True, eq=False)
class FitMetrics(Mapping[str, Any]):
    """Goodness of fit, data ranges and checks of one fit; None: not recorded by this fitter.

    Attributes:
        n_base: runs of the base data set (Approach 2's stage 1).
        quality_fitted: Approach 2's eps and zeta were fitted (else held at 0).
        r2: R^2 of the fit (log-log for power laws); r2_log: R^2 of log loss (L(N, D) laws).
        n_starts: optimiser starts of the initialisation grid.
        log_centre: mean log N and log D of the fitted runs.
        stage2_given_stage1: Approach 2's eps and zeta 95 % intervals with stage 1 held at its fit.
        envelope_indices: rows on the envelope; n_bins, binning, best: the envelope's settings;
            n_candidates: rows it was drawn from.
        x_range, y_range: (lowest, highest) x and y the law was fitted on.
        x_column: the table column x was read from (its FLOP unit converts a budget).
        level_at_centre_decades: width, in decades, of the power law's level at the data's centre.
        r2_N, r2_D, r2_L, n_curves, n_model_sizes, envelope_flops, envelope_loss, envelope_N, envelope_D:
            Approach 1's regressions and envelope.
        quantile, coverage, log_x, year0, compute: quantile regressions and trends.
        identifiability: `Identifiability`; earned_ok: `EarnedOk`.
        extra: keys this version does not know (a newer or a plug-in fitter's), kept as they were.
    """

    n_base: int | None = None
    quality_fitted: bool | None = None
    r2: float | None = None
    r2_log: float | None = None
    n_starts: int | None = None
    log_centre: LogCentre | None = None
    stage2_given_stage1: Mapping[str, Interval] | None = None
    envelope_indices: tuple[int, ...] | None = None
    n_bins: int | None = None
    binning: str | None = None
    best: str | None = None
    n_candidates: int | None = None
    x_range: Interval | None = None
    y_range: Interval | None = None
    x_column: str | None = None
    level_at_centre_decades: float | None = None
    r2_N: float | None = None  # noqa: N815 (Approach 1's regression of N*)
    r2_D: float | None = None  # noqa: N815
    r2_L: float | None = None  # noqa: N815
    n_curves: int | None = None
    n_model_sizes: int | None = None
    envelope_flops: tuple[float, ...] | None = None
    envelope_loss: tuple[float, ...] | None = None
    envelope_N: tuple[float, ...] | None = None  # noqa: N815
    envelope_D: tuple[float, ...] | None = None  # noqa: N815
    quantile: float | None = None
    coverage: float | None = None
    log_x: bool | None = None
    year0: float | None = None
    compute: str | None = None
    identifiability: Identifiability | None = None
    earned_ok: EarnedOk | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: FitMetrics | Mapping[str, Any] | None) -> FitMetrics:
        """A `FitMetrics` from itself, or from the dict form (a saved fit's, or ``{**metrics, key: value}``)."""
        if isinstance(value, FitMetrics):
            return value
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, item in (value or {}).items():
            if key in _FIELDS:
                known[key] = None if item is None else _COERCE.get(key, _same)(item)
            else:
                extra[key] = item
        return cls(**known, extra=extra)

    def with_(self, **changes: Any) -> FitMetrics:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The dict form: the fields that are set, nested records as dicts and tuples as lists."""
        return {key: _plain(value) for key, value in self._items()}

    def _items(self) -> Iterator[tuple[str, Any]]:
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                yield name, value
        yield from self.extra.items()

    def __getitem__(self, key: str) -> Any:
        if key in _FIELDS:
            value = getattr(self, key)
            if value is not None:
                return _plain(value)
        elif key in self.extra:
            return self.extra[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items())

    def __len__(self) -> int:
        return sum(1 for _ in self._items())

    def __repr__(self) -> str:
        return f"FitMetrics({', '.join(f'{k}={v!r}' for k, v in self._items())})"


def _same(value: Any) -> Any:
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, (Identifiability, EarnedOk, LogCentre)):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


_FIELDS = tuple(f.name for f in fields(FitMetrics) if f.name != "extra")
_COERCE: dict[str, Any] = {
    "identifiability": Identifiability.coerce, "earned_ok": EarnedOk.coerce, "log_centre": LogCentre.coerce,
    "stage2_given_stage1": _intervals, "x_range": _pair, "y_range": _pair, "envelope_indices": _ints,
    "envelope_flops": _floats, "envelope_loss": _floats, "envelope_N": _floats, "envelope_D": _floats,
}
