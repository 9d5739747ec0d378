"""An older store is upgraded in place, by the demo on its own store and on request."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from store import connect, read_schema_version, schema, write_spans
from store.layout import WRITTEN_ARROW_SCHEMA
from wardwatch import wiring
from wardwatch.errors import UserError


def _version_1_store(data: Path) -> None:
    write_spans(data, [{
        schema.TIMESTAMP: dt.datetime(2026, 10, 5, 8, 0, tzinfo=dt.UTC),
        schema.TRACE_ID: "a" * 32,
        schema.SPAN_ID: "b" * 16,
        schema.SPAN_ATTRIBUTES: {
            schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN, schema.ATTR_RUN_WAITING_S: "4.25",
            schema.ATTR_RUN_STATUS: schema.RUN_OK,
        },
    }])
    for segment in data.glob("spans/*/*.parquet"):  # as version 1 wrote it: no typed columns
        pq.write_table(pq.read_table(segment).select(WRITTEN_ARROW_SCHEMA.names), segment)
    (data / "store.json").write_text(json.dumps({"schema_version": 1}))


def test_upgrade_says_what_it_does_and_the_store_reads_again(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    _version_1_store(data)
    assert wiring.upgrade(data) == 1
    assert "schema version" in capsys.readouterr().err
    assert read_schema_version(data) == schema.SCHEMA_VERSION
    assert connect(data).execute("SELECT waiting_s, status FROM runs").fetchall() == [(4.25, "ok")]
    assert wiring.upgrade(data) == 0
    assert wiring.upgrade(tmp_path / "no-store-yet") == 0


def test_a_store_of_an_unknown_version_is_a_user_error(tmp_path) -> None:
    data = tmp_path / "data"
    _version_1_store(data)
    (data / "store.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(UserError, match="cannot be upgraded"):
        wiring.upgrade(data)


def test_a_store_of_the_previous_version_is_upgraded_once_and_reports_the_same_bytes(tmp_path, monkeypatch) -> None:
    """A store as the previous Wardwatch wrote it (segments, no pre-aggregates): `upgrade-store -c`
    builds every closed bucket's pre-aggregate once, with progress shown; the month's JSON report
    is the same byte for byte, and the dashboard's figures read the pre-aggregates and agree with
    the exact ones."""
    import types

    from click.testing import CliRunner

    import analysis
    import analysis.report
    from analysis.query import figures, preagg
    from wardwatch.cli import main
    from wardwatch.config import load_config
    from wardwatch.simulate import simulate_history

    example = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"
    config_file = tmp_path / "w.yaml"
    config_file.write_text(example.read_text().replace("path: ../data/demo", f"path: {tmp_path / 'data'}"))
    config = load_config(config_file)
    end = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    simulate_history(config, days=2, end=end, store_path=tmp_path / "data", workers=1)
    defs = wiring.query_definitions(config)
    assert preagg.coverage(tmp_path / "data", defs).ranges == ()  # as the previous version left it

    def report() -> bytes:
        result = CliRunner().invoke(main, ["report", "-c", str(config_file), "--month", "2026-11", "--format", "json"])
        assert result.exit_code == 0, result.output
        return result.stdout_bytes

    class Frozen(dt.datetime):  # the report says when it was generated: the same moment both times
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC).astimezone(tz)

    monkeypatch.setattr(analysis.report, "dt", types.SimpleNamespace(**{**vars(dt), "datetime": Frozen}))
    # Sums in parallel threads differ from run to run in the last digit (the report's means):
    # one thread, so that two reports of the same spans are the same bytes.
    import analysis.store
    import duckdb

    def one_thread(*args, **kwargs):
        con = duckdb.connect(*args, **kwargs)
        con.execute("SET threads = 1")
        return con

    monkeypatch.setattr(analysis.store, "duckdb", types.SimpleNamespace(**{**vars(duckdb), "connect": one_thread}))
    before = report()
    assert report() == before, 'the report alone is not deterministic'
    upgraded = CliRunner().invoke(main, ["upgrade-store", "-c", str(config_file)])
    assert upgraded.exit_code == 0, upgraded.output
    assert "building the pre-aggregates" in upgraded.output and "day(s) built" in upgraded.output
    after = report()
    assert after == before
    covered = preagg.coverage(tmp_path / "data", defs).ranges
    assert covered and covered[0][0] <= (end - dt.timedelta(days=2)).timestamp()
    closed_days = [b for b in preagg.coverage(tmp_path / "data", defs).built if b.hi - b.lo == 86_400]
    assert closed_days and all({("runs", 3600), ("runs", 86_400), ("top", 86_400)} <= set(b.files) for b in closed_days
                               if ("runs", 900) in b.files)  # the hour and day rows and kept slowest runs too
    again = CliRunner().invoke(main, ["upgrade-store", "-c", str(config_file)])
    assert "already up to date" in again.output  # once: nothing is built twice
    window = analysis.RunFilter(end - dt.timedelta(days=2), end)
    with analysis.open_store(tmp_path / "data") as store:
        ours, exact = figures.ask(store, window, defs), figures.ask(store, window, defs, exact=True)
        assert ours.relative_error > 0
        counts = ["workflow", "site", "samples", "not_ok", "share_under"]
        assert figures.board(ours)[counts].equals(figures.board(exact)[counts])


def test_the_maintenance_of_a_writing_process_keeps_the_pre_aggregates(tmp_path) -> None:
    """The composition root registers the query layer's refresh with the store's maintenance
    (the store knows nothing of it): as the thread starts, every closed bucket is built."""
    import time

    from analysis.query import preagg
    from wardwatch.config import load_config
    from wardwatch.simulate import simulate_history

    example = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"
    config_file = tmp_path / "w.yaml"
    config_file.write_text(example.read_text().replace("path: ../data/demo", f"path: {tmp_path / 'data'}"))
    config = load_config(config_file)
    simulate_history(config, days=1, end=dt.datetime(2026, 11, 20, tzinfo=dt.UTC), store_path=tmp_path / "data",
                     workers=1)
    defs = wiring.query_definitions(config)
    with wiring._maintained(config):
        deadline = time.monotonic() + 60
        while not preagg.coverage(tmp_path / "data", defs).ranges and time.monotonic() < deadline:
            time.sleep(0.2)
    assert preagg.coverage(tmp_path / "data", defs).ranges
