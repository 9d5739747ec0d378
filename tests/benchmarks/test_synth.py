"""The benchmark stores: a large day is written in bounded chunks, and a stopped generation leaves
nothing that a later run would reuse as a whole store."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from benchmarks import suite, synth


def test_a_day_larger_than_a_chunk_is_written_in_chunks_in_start_order(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth, "CHUNK_RUNS", 40)
    generated = synth.generate_store(tmp_path / "store", 8 * 100 * 2, days=2)
    days = sorted((tmp_path / "store" / "spans").iterdir())
    assert [len(list(d.glob("*.parquet"))) for d in days] == [3, 3]  # 100 runs a day: 40 + 40 + 20
    con = duckdb.connect()
    rows = con.execute("SELECT count(*), count(DISTINCT TraceId) FROM read_parquet(?)",
                       [str(tmp_path / "store" / "spans" / "*" / "*.parquet")]).fetchone()
    assert rows == (generated.spans, generated.runs) == (1600, 200)
    for day in days:  # each segment's runs start after the previous segment's
        bounds = con.execute("SELECT min(Timestamp), max(Timestamp) FROM read_parquet(?, filename = true) "
                             "WHERE SpanAttributes['wardwatch.span.type'] = 'run' GROUP BY filename ORDER BY 1",
                             [str(day / "*.parquet")]).fetchall()
        assert all(a[1] <= b[0] for a, b in zip(bounds, bounds[1:]))


def test_a_stopped_generation_is_not_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = suite.Settings.tiny()
    real = synth.generate_store

    def stopped(path: Path, *args: object, **kwargs: object) -> None:
        real(path, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "generate_store", stopped)
    with pytest.raises(KeyboardInterrupt), suite._store(4_000, settings, tmp_path, lambda _m: None):
        pass
    assert not (tmp_path / "spans-4000-3d").exists()
    monkeypatch.setattr(synth, "generate_store", real)
    messages: list[str] = []
    with suite._store(4_000, settings, tmp_path, messages.append) as path:
        assert (path / "store.json").exists()
    assert not any("reusing" in m for m in messages)
