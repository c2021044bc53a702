"""Column builders for the demo dataset: seeded draws, weighted choices, padded ids, timestamps.

Vectorised with NumPy and Polars (no per-row Python), used by ``activation_pipeline/demo_data.py``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
from numpy.typing import ArrayLike


def table_rng(seed: int, stream: int) -> np.random.Generator:
    """One independent generator per table, so changing one table's size leaves the others alone."""
    return np.random.default_rng([seed, stream])


def weighted_choice(rng: np.random.Generator, weights: ArrayLike, n: int) -> np.ndarray:
    """``n`` indices drawn with the given (unnormalised, positive) weights, in the smallest integer dtype.

    Index i is the number of cumulative weights <= u for a uniform u (``searchsorted`` side
    right). Few weights: one comparison pass per weight. Many (a weight per customer or
    product): a guide table gives the first candidate of u's 1/k-wide bucket, then the
    rows still short of their answer step forward, so each row costs O(1), not a binary search.
    """
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    k, u = len(cdf), rng.random(n)
    if k <= 16:
        small = np.zeros(n, dtype=np.uint8)
        for bound in cdf[:-1]:
            small += u >= bound
        return small
    guide = np.searchsorted(cdf, np.arange(k) / k, side="right")
    idx = guide[np.minimum((u * k).astype(np.int64), k - 1)]
    todo = np.flatnonzero(cdf[idx] <= u)
    while todo.size:  # a few steps at most for most rows; cdf[-1] == 1 > u stops every row
        idx[todo] += 1
        todo = todo[cdf[idx[todo]] <= u[todo]]
    return idx.astype(np.min_scalar_type(k - 1))


def zero_padded(numbers: np.ndarray, width: int) -> pl.Series:
    """Decimal text zero-padded to ``width`` digits (like ``str.zfill``, faster)."""
    if numbers.size and numbers.max() >= 10**width:
        return pl.Series(numbers).cast(pl.String).str.zfill(width)
    return pl.Series(numbers + 10**width).cast(pl.String).str.slice(1)


def gather(values: list, idx: np.ndarray, name: str = "") -> pl.Series:
    """Rows picked from a small list: string rows share the list's buffers (16 bytes a row)."""
    return pl.Series(name, values).gather(idx)


def epoch_micros(day: date) -> int:
    return int((datetime.combine(day, datetime.min.time()) - datetime(1970, 1, 1)).total_seconds()) * 1_000_000


def moments(rng: np.random.Generator, n: int, end: date, days: int) -> np.ndarray:
    """Epoch microseconds, whole seconds, uniform over the ``days`` days ending with ``end`` (inclusive)."""
    return epoch_micros(end + timedelta(days=1)) - rng.integers(1, days * 86_400 + 1, size=n) * 1_000_000


def timestamps(micros: np.ndarray, name: str) -> pl.Series:
    return pl.Series(name, micros).cast(pl.Datetime("us"))


def concat(*parts: pl.Series | pl.Expr | str, name: str = "") -> pl.Series:
    """Row-wise string concatenation of Series, expressions and literals (nulls are skipped)."""
    exprs = [pl.lit(p) if isinstance(p, (str, pl.Series)) else p for p in parts]
    return pl.select(pl.concat_str(exprs, ignore_nulls=True)).to_series().alias(name)
