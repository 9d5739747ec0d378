"""Exact medians in DuckDB with memory bounded by histograms, not by the rows.

DuckDB's ``median`` (``quantile_cont`` at 0.5) holds every value of every group until the end:
the step growth of a month at 10M spans (2.8 million steps of about 400,000 runs, six columns)
held 460 MB for it. Here the same number is found in two passes over the rows:

1. per group, a histogram of each column's values in buckets of 2% (``ln(v) * 50``; every value
   <= 0 in one bucket): a few hundred counts per group, which say the bucket holding each of the
   two middle ranks (``floor((n - 1) / 2)`` and ``ceil((n - 1) / 2)``, 0-based) and how many
   values lie below it;
2. per group, the distinct values of those buckets only, with their counts, from which the two
   order statistics are read.

The median is interpolated as DuckDB does (``lo + (hi - lo) * 0.5``, in doubles), so it is
DuckDB's median to the last bit (``tests/analysis/test_medians.py``). NULLs are left out, as
``median`` leaves them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["exact_medians"]

# Buckets of ln(v) * 50: e^(1/50) = 1.02, each bucket within 2% of its values.
_PER_LN = 50.0
_LOWEST, _HIGHEST = -(10**9), 10**9


class _Reader(Protocol):
    def sql(self, query: str, params: Sequence[Any] | None = None,
            tables: Mapping[str, pa.Table | pd.DataFrame] | None = None) -> pd.DataFrame: ...


def _bucket(column: str) -> str:
    """A bucket of ``column``, monotone in it: values <= 0 in the lowest, NaN and infinity in the
    highest (where DuckDB sorts them), NULL stays NULL."""
    return (f"CASE WHEN {column} <= 0 THEN {_LOWEST} WHEN isfinite({column}) "
            f"THEN CAST(floor(ln({column}) * {_PER_LN!r}) AS BIGINT) "
            f"WHEN {column} IS NOT NULL THEN {_HIGHEST} END")


def _counts(cell: object) -> list[tuple[Any, int]]:
    """A DuckDB ``histogram`` (a map, read as a list of pairs; NULL: nothing) sorted by key."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    return sorted((k, int(v)) for k, v in cell)  # type: ignore[union-attr]


def _ranks(total: int) -> tuple[int, int]:
    return (total - 1) // 2, total // 2


def exact_medians(store: _Reader, source: str, params: Sequence[Any], keys: Sequence[str],
                  values: Sequence[str], tables: Mapping[str, pa.Table | pd.DataFrame] | None = None,
                  also: Sequence[str] = ()) -> pd.DataFrame:
    """The median of each of ``values`` (numeric columns of the query ``source``) per ``keys``:
    one row per group ``source`` holds, a column per value (NaN where the group has none).

    ``source`` and its ``params`` are read twice; ``tables`` are registered for both reads.
    ``also``: other aggregates of each group (``count(*) AS n``), computed in the first read
    and returned as columns.
    """
    if not keys or not values:
        raise ValueError("exact_medians needs keys and values")
    k = ", ".join(keys)
    first = store.sql(
        f"SELECT {k}, {', '.join([*(f'histogram({_bucket(v)}) AS {v}' for v in values), *also])} "
        f"FROM ({source}) GROUP BY ALL", params, tables)
    if first.empty:
        return pd.DataFrame(columns=[*keys, *values, *first.columns[len(keys) + len(values):]])
    # Per group and value: the buckets holding the two middle ranks, and the count below them.
    bounds: dict[str, list[tuple[int, int, int, int]]] = {}  # value -> (lo, hi, below, total)
    for value in values:
        rows = []
        for cell in first[value]:
            counts = _counts(cell)
            total = sum(n for _, n in counts)
            if not total:
                rows.append((_HIGHEST + 1, _HIGHEST + 1, 0, 0))  # no value: nothing wanted
                continue
            low_rank, high_rank = _ranks(total)
            below, seen, lo = 0, 0, None
            for bucket, n in counts:
                if lo is None and seen + n > low_rank:
                    lo, below = bucket, seen
                if seen + n > high_rank:
                    rows.append((lo, bucket, below, total))
                    break
                seen += n
        bounds[value] = rows
    wanted = first[list(keys)].copy()
    for value in values:
        wanted[f"{value}__lo"] = np.array([r[0] for r in bounds[value]], dtype=np.int64)
        wanted[f"{value}__hi"] = np.array([r[1] for r in bounds[value]], dtype=np.int64)
    same = " AND ".join(f"_s.{c} IS NOT DISTINCT FROM _w.{c}" for c in keys)
    picked = ", ".join(
        f"histogram(_s.{v}) FILTER (WHERE {_bucket(f'_s.{v}')} BETWEEN _w.{v}__lo AND _w.{v}__hi) AS {v}"
        for v in values)
    second = store.sql(
        f"SELECT {', '.join(f'_w.{c}' for c in keys)}, {picked} FROM ({source}) AS _s "
        f"JOIN median_buckets AS _w ON {same} GROUP BY ALL",
        params, {**(tables or {}), "median_buckets": pa.Table.from_pandas(wanted, preserve_index=False)})
    # The second read's groups in the first's order.
    second = first[list(keys)].merge(second, on=list(keys), how="left")
    out = first[list(keys)].copy()
    for value in values:
        medians = []
        for cell, (_, _, below, total) in zip(second[value], bounds[value], strict=True):
            if not total:
                medians.append(np.nan)
                continue
            low_rank, high_rank = _ranks(total)
            lo = hi = None
            seen = below
            for number, n in _counts(cell):
                if lo is None and seen + n > low_rank:
                    lo = number
                if seen + n > high_rank:
                    hi = number
                    break
                seen += n
            lo_f, hi_f = float(lo), float(hi)  # type: ignore[arg-type]
            medians.append(lo_f if low_rank == high_rank else lo_f + (hi_f - lo_f) * 0.5)
        out[value] = np.array(medians, dtype=np.float64)
    for column in first.columns[len(keys) + len(values):]:
        out[column] = first[column]
    return out.reset_index(drop=True)
