"""The bitmap distinct count the findings use in place of a month-wide ``count(DISTINCT ...)``."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from analysis.query.dialect import count_distinct_dense


def test_count_distinct_dense_equals_count_distinct_per_group() -> None:
    rng = np.random.default_rng(15)
    runs = rng.integers(0, 5000, size=40_000)  # repeated runs: several requests of a type per run
    table = pa.table({"g": rng.integers(0, 7, size=runs.size), "run_no": runs})
    con = duckdb.connect()
    con.register("t", table)
    rows = con.execute(f"""
        SELECT g, count(DISTINCT run_no) AS exact, {count_distinct_dense("run_no", "?")} AS dense,
               count(*) / count(DISTINCT run_no) AS per_run,
               count(*) / {count_distinct_dense("run_no", "?")} AS per_run_dense
        FROM t GROUP BY g ORDER BY g""", [4999, 4999]).fetchall()
    assert len(rows) == 7
    for _, exact, dense, per_run, per_run_dense in rows:
        assert dense == exact
        assert per_run_dense == per_run  # the same division of the same integers, bit for bit
