"""Inter-rater agreement on incomplete designs: Fleiss' kappa and Krippendorff's alpha (nominal).

Real studies do not have every labeller answer every image: `--batches` splits the work (each image
gets the 14-15 labellers of its batch), latecomers answer a few images. Both statistics here work from
an items x categories count table ``counts[i, c]`` = how many raters gave item i class c, and use
every item with at least two ratings (an item rated once carries no agreement information).

- **Fleiss' kappa**, general form for a varying number of raters n_i per item (Fleiss 1971, with
  per-item agreement normalised by its own n_i):
  P_i = sum_c n_ic (n_ic - 1) / (n_i (n_i - 1)),  P_bar = mean_i P_i,
  p_c = sum_i n_ic / sum_i n_i,  P_e = sum_c p_c^2,  kappa = (P_bar - P_e) / (1 - P_e).
  With the same n for every item it is the textbook Fleiss' kappa (statsmodels' ``fleiss_kappa``).
- **Krippendorff's alpha**, nominal metric, from the coincidence matrix: pairable values
  n_c = sum_i n_ic, n = sum_c n_c, observed agreement sum_c o_cc with o_cc = sum_i n_ic (n_ic - 1) / (n_i - 1):
  alpha = 1 - (n - 1) (n - sum_c o_cc) / (n^2 - sum_c n_c^2)  (Krippendorff 2011, "Computing
  Krippendorff's alpha-reliability", Sec. C); equals the ``krippendorff`` package's nominal alpha.

Intervals: a percentile bootstrap over items (items resampled with replacement, counts kept whole),
so the interval reflects which images happened to be in the study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

N_BOOTSTRAP = 1000


@dataclass(frozen=True)
class Agreement:
    """Kappa and alpha of one group of raters on one version ("adv" or "clean").

    Attributes:
        group: "humans", "machines" or "all".
        kappa: Fleiss' kappa (None when undefined: < 2 items with >= 2 ratings, or one category only).
        alpha: Krippendorff's alpha, nominal (None when undefined).
        n_items: items with at least two ratings (the ones both statistics use).
        n_raters: raters with at least one rating on those items.
        n_ratings: ratings on those items.
        kappa_ci, alpha_ci: 95 % percentile bootstrap intervals over items (None when undefined).
    """

    group: str
    kappa: float | None
    alpha: float | None
    n_items: int
    n_raters: int
    n_ratings: int
    kappa_ci: tuple[float, float] | None = None
    alpha_ci: tuple[float, float] | None = None


def _as_table(counts: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2:
        raise ValueError(f"expected an items x categories count table, got shape {table.shape}")
    if (table < 0).any():
        raise ValueError("counts must be >= 0")
    return table[table.sum(axis=1) >= 2]


def _kappa_batch(tables: np.ndarray) -> np.ndarray:
    """Fleiss' kappa of each (items x categories) table in a (B, I, C) stack; NaN where undefined."""
    n_i = tables.sum(axis=2)  # (B, I)
    p_i = (tables * (tables - 1)).sum(axis=2) / (n_i * (n_i - 1))
    p_bar = p_i.mean(axis=1)
    p_c = tables.sum(axis=1) / n_i.sum(axis=1, keepdims=True)  # (B, C)
    p_e = (p_c**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (p_bar - p_e) / (1 - p_e)
    return np.where(p_e < 1 - 1e-12, out, np.nan)


def _alpha_batch(tables: np.ndarray) -> np.ndarray:
    """Krippendorff's nominal alpha of each table in a (B, I, C) stack; NaN where undefined."""
    n_i = tables.sum(axis=2, keepdims=True)  # (B, I, 1)
    o_cc = (tables * (tables - 1) / (n_i - 1)).sum(axis=(1, 2))  # agreeing pairs, weighted 1 / (n_i - 1)
    n_c = tables.sum(axis=1)  # (B, C)
    n = n_c.sum(axis=1)
    expected = n**2 - (n_c**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1 - (n - 1) * (n - o_cc) / expected
    return np.where(expected > 0, out, np.nan)


def _value(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def fleiss_kappa_general(counts: Sequence[Sequence[int]] | np.ndarray) -> float | None:
    """Fleiss' kappa over the items with >= 2 ratings, any number of raters per item (None if undefined)."""
    table = _as_table(counts)
    return None if len(table) < 1 else _value(_kappa_batch(table[None])[0])


def krippendorff_alpha_nominal(counts: Sequence[Sequence[int]] | np.ndarray) -> float | None:
    """Krippendorff's alpha (nominal) over the items with >= 2 ratings (None if undefined)."""
    table = _as_table(counts)
    return None if len(table) < 1 else _value(_alpha_batch(table[None])[0])


def bootstrap_intervals(
    counts: np.ndarray, *, n_boot: int = N_BOOTSTRAP, seed: int = 0, level: float = 0.95
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """95 % percentile intervals of (kappa, alpha), resampling items with replacement."""
    table = _as_table(counts)
    if len(table) < 2:
        return None, None
    rng = np.random.default_rng(seed)
    out: list[tuple[float, float] | None] = []
    kappas, alphas = [], []
    for start in range(0, n_boot, 200):  # chunks keep the (B, I, C) stack small
        idx = rng.integers(0, len(table), size=(min(200, n_boot - start), len(table)))
        stack = table[idx]
        kappas.append(_kappa_batch(stack))
        alphas.append(_alpha_batch(stack))
    tail = 100 * (1 - level) / 2
    for values in (np.concatenate(kappas), np.concatenate(alphas)):
        values = values[~np.isnan(values)]
        out.append(None if len(values) < n_boot // 2 else
                   (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))))
    return out[0], out[1]


def count_table(ratings: Mapping[str, Mapping[str, int]], n_categories: int) -> tuple[np.ndarray, int, int]:
    """(items x categories counts over items with >= 2 ratings, raters on those items, ratings on them).

    Args:
        ratings: item id -> rater name -> category index.
        n_categories: number of categories.
    """
    rows, raters, n_ratings = [], set(), 0
    for given in ratings.values():
        if len(given) < 2:
            continue
        row = np.zeros(n_categories)
        for rater, category in given.items():
            row[category] += 1
            raters.add(rater)
        rows.append(row)
        n_ratings += len(given)
    return np.asarray(rows).reshape(-1, n_categories), len(raters), n_ratings


def agreement(group: str, ratings: Mapping[str, Mapping[str, int]], n_categories: int, *,
              n_boot: int = N_BOOTSTRAP, seed: int = 0) -> Agreement:
    """Kappa, alpha, counts and bootstrap intervals of one group's ratings (item -> rater -> category)."""
    table, n_raters, n_ratings = count_table(ratings, n_categories)
    kappa, alpha = fleiss_kappa_general(table), krippendorff_alpha_nominal(table)
    kappa_ci, alpha_ci = bootstrap_intervals(table, n_boot=n_boot, seed=seed) if n_boot else (None, None)
    return Agreement(group=group, kappa=kappa, alpha=alpha, n_items=len(table), n_raters=n_raters,
                     n_ratings=n_ratings, kappa_ci=kappa_ci, alpha_ci=alpha_ci)


def describe(a: Agreement) -> str:
    """One line, e.g. "humans: kappa 0.307 [0.28, 0.33], alpha 0.308 [...] over 136 images, 50 raters"."""
    if a.n_items == 0:
        return f"{a.group}: - (no image has two answers)"

    def fmt(x: float | None, ci: tuple[float, float] | None) -> str:
        text = "-" if x is None else f"{x:.3f}"
        return text if ci is None else f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]"

    return (f"{a.group}: kappa {fmt(a.kappa, a.kappa_ci)}, alpha {fmt(a.alpha, a.alpha_ci)} over {a.n_items} images, "
            f"{a.n_raters} raters, {a.n_ratings} answers")


__all__ = ["Agreement", "agreement", "describe", "bootstrap_intervals", "count_table", "fleiss_kappa_general",
           "krippendorff_alpha_nominal"]
