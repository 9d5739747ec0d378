"""The SQL that only DuckDB understands, in one place and named, so another engine is a new dialect.

Every figure of :mod:`analysis.query` is written in plain SQL (window functions, ``FILTER``,
``GROUP BY``) and calls these for the rest. A ClickHouse dialect would give the same names:
``toStartOfInterval`` for :func:`bucket_start`, ``toTimeZone`` for :func:`local_time`,
``has`` for :func:`in_list`, ``s3``/``file`` table functions for :func:`read_files`. The rest
is SQL both engines read (``GROUP BY ALL``, window functions, ``IS NOT DISTINCT FROM``), except
``FILTER (WHERE ...)`` on aggregates, which ClickHouse spells as an ``-If`` combinator: the one
rewrite a second dialect would make throughout. The clinical periods' conditions are
``analysis.calendar``'s (``ClinicalCalendar.sql_condition``).
"""

from __future__ import annotations

import math

__all__ = [
    "GAMMA",
    "RELATIVE_ERROR",
    "SESSION",
    "bucket_start",
    "count_distinct_dense",
    "exact_quantile",
    "hour_of",
    "in_list",
    "local_time",
    "log_bucket_value",
    "read_files",
    "weekday_of",
]

# The histogram's bound: every value is represented by one within 1% of it (see log_bucket_value).
RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(GAMMA)

# Settings of every connection that runs the layer's SQL. DuckDB 1.5.1 to 1.5.6 (the lock holds
# 1.5.6) answer wrongly, silently, when two parts of one query share a join subtree and the
# common_subplan optimizer merges them (duckdb issue 25819): the figures reuse their source CTE.
SESSION = ("SET disabled_optimizers = 'build_side_probe_side,common_subplan'",)


def bucket_start(column: str, seconds: int) -> str:
    """The start of the ``seconds``-long UTC bucket holding ``column`` (a TIMESTAMPTZ)."""
    return f"time_bucket(INTERVAL '{int(seconds)} seconds', {column}, TIMESTAMPTZ '1970-01-01 00:00:00+00')"


def local_time(zone_param: str, column: str) -> str:
    """``column`` as wall-clock time in the zone given by ``zone_param`` (a ``?``)."""
    return f"timezone({zone_param}, {column})"


def weekday_of(local: str) -> str:
    """0 = Monday ... 6 = Sunday."""
    return f"(isodow({local}) - 1)"


def hour_of(local: str) -> str:
    return f"hour({local})"


def in_list(param: str, column: str) -> str:
    """``column`` is one of the list bound to ``param``."""
    return f"list_contains({param}, {column})"


def log_bucket_value(column: str) -> str:
    """The histogram's representative of a value: bucket ``i = ceil(log_gamma(v))`` holds
    ``(gamma^(i-1), gamma^i]`` and is represented by ``2 gamma^i / (gamma + 1)``, within
    :data:`RELATIVE_ERROR` of every value in it; values <= 0 are 0, NULL stays NULL."""
    return (f"CASE WHEN {column} > 0 THEN 2 * pow({GAMMA!r}, ceil(ln({column}) / {_LOG_GAMMA!r})) / {GAMMA + 1!r} "
            f"WHEN {column} IS NOT NULL THEN 0.0 END")


def exact_quantile(column: str, q: float) -> str:
    """The project's percentile of every sample: linear interpolation between order statistics at
    rank ``q (n - 1)`` (numpy's default; the weighted form in ``figures`` is its generalization)."""
    return f"quantile_cont({column}, {float(q)!r})"


def count_distinct_dense(column: str, last_param: str) -> str:
    """How many distinct values ``column`` (an integer in ``0 .. last_param``) takes: a bitmap of
    one bit per possible value per group, so memory is bounded by groups x range / 8 rather than
    by rows, as a hash set of ``count(DISTINCT)`` is (ClickHouse: ``uniqExact`` or
    ``groupBitmap``)."""
    return f"bit_count(bitstring_agg({column}, 0, {last_param}))"


def read_files(paths: list[str]) -> str:
    """A relation over Parquet files (paths are the store's own, quoted here)."""
    quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    return f"read_parquet([{quoted}])"
