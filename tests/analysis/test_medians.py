"""The medians found through histograms are DuckDB's ``median`` to the last bit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis.medians import exact_medians


class _Con:
    """What :func:`exact_medians` reads through: ``sql(query, params, tables)``."""

    def __init__(self) -> None:
        self.con = duckdb.connect()
        self.queries: list[str] = []

    def sql(self, query: str, params: Sequence[Any] | None = None,
            tables: Mapping[str, Any] | None = None) -> pd.DataFrame:
        self.queries.append(query)
        cursor = self.con.cursor()
        for name, table in (tables or {}).items():
            cursor.register(name, table)
        return cursor.execute(query, list(params or [])).to_arrow_table().to_pandas()  # as Store.sql


def _table(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 20_000 - seed  # groups odd and even in size
    value = rng.lognormal(0, 1.5, n)
    # ties, zeros and negatives beside the spread of a month's durations
    value[rng.random(n) < 0.2] = 1.25
    value[rng.random(n) < 0.05] = 0.0
    negative = rng.random(n) < 0.02
    value[negative] = -rng.random(int(negative.sum()))
    other = np.where(rng.random(n) < 0.3, np.nan, rng.exponential(0.2, n))
    return pd.DataFrame({"g": rng.integers(0, 7, n), "flag": rng.random(n) < 0.5, "v": value,
                         "w": pd.array(other, dtype="Float64")})


@pytest.mark.parametrize("seed", range(6))
def test_medians_through_histograms_are_duckdbs_median(seed: int) -> None:
    reader, table = _Con(), _table(seed)
    reader.con.register("t", table)
    expected = reader.con.execute("SELECT g, flag, median(v) AS v, median(w) AS w FROM t "
                                  "GROUP BY ALL ORDER BY g, flag").df()
    got = exact_medians(reader, "SELECT * FROM t WHERE g >= ?", [0], ["g", "flag"], ["v", "w"],
                        tables={"t": table})
    got = got.sort_values(["g", "flag"]).reset_index(drop=True)
    assert len(got) == len(expected) == 14
    for column in ("v", "w"):
        np.testing.assert_array_equal(got[column].to_numpy(float), expected[column].to_numpy(float))
    assert not any("median(" in q or "quantile" in q for q in reader.queries)


def test_a_group_of_one_value_a_column_of_nulls_and_a_registered_table() -> None:
    reader = _Con()
    rows = pd.DataFrame({"g": [1, 2, 2, 3], "v": [2.5, 1.0, 4.0, np.nan], "w": [np.nan, np.nan, np.nan, 1.0]})
    got = exact_medians(reader, "SELECT * FROM rows", [], ["g"], ["v", "w"], tables={"rows": rows})
    got = got.sort_values("g").reset_index(drop=True)
    assert got["g"].tolist() == [1, 2, 3]
    assert got["v"].tolist()[:2] == [2.5, 2.5] and np.isnan(got["v"][2])
    assert np.isnan(got["w"][0]) and np.isnan(got["w"][1]) and got["w"][2] == 1.0


def test_no_rows() -> None:
    got = exact_medians(_Con(), "SELECT 1 AS g, 1.0 AS v WHERE false", [], ["g"], ["v"])
    assert got.empty and list(got.columns) == ["g", "v"]


def test_other_aggregates_of_each_group_come_from_the_first_read() -> None:
    reader = _Con()
    rows = pd.DataFrame({"g": [1, 1, 2], "v": [1.0, 3.0, 5.0], "run": [0, 0, 1]})
    got = exact_medians(reader, "SELECT * FROM rows", [], ["g"], ["v"], tables={"rows": rows},
                        also=["count(*) AS n", "count(DISTINCT run) AS runs"])
    got = got.sort_values("g").reset_index(drop=True)
    assert got[["g", "v", "n", "runs"]].values.tolist() == [[1, 2.0, 2, 1], [2, 5.0, 1, 1]]
    assert "count(*)" in reader.queries[0] and "count(*)" not in reader.queries[1]
