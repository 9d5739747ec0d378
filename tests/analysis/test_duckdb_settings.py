"""DuckDB's memory limit and temp directory come from the configuration, wherever analysis opens a store."""

from __future__ import annotations

from pathlib import Path

import pytest

import analysis
from store import init_store
from store.config import StoreConfig, use_duckdb_settings
from wardwatch.config import ConfigError, load_config, parse_config


def _settings(store: analysis.Store) -> tuple[str, str]:
    row = store.sql("SELECT current_setting('memory_limit') AS m, current_setting('temp_directory') AS t")
    return str(row["m"].iloc[0]), str(row["t"].iloc[0])


def test_a_store_takes_the_configured_limit_and_temp_directory(tmp_path: Path) -> None:
    init_store(tmp_path / "data")
    settings = StoreConfig(duckdb_memory_limit="300MiB", duckdb_temp_directory=tmp_path / "spill")
    with analysis.open_store(tmp_path / "data", settings=settings) as store:
        assert _settings(store) == ("300.0 MiB", str(tmp_path / "spill"))


def test_the_command_lines_settings_apply_to_every_store_opened_after(tmp_path: Path) -> None:
    init_store(tmp_path / "data")
    with analysis.open_store(tmp_path / "data") as store:  # the defaults: 2 GB, a directory of its own
        limit, temp = _settings(store)
        assert limit in ("1.8 GiB", "1.9 GiB") and "wardwatch-duckdb-" in temp
    use_duckdb_settings(StoreConfig(duckdb_memory_limit="256MB"))
    try:
        with analysis.open_store(tmp_path / "data") as store:
            assert _settings(store)[0] in ("244.1 MiB", "244.0 MiB")
    finally:
        use_duckdb_settings(None)


def test_a_relative_temp_directory_is_taken_from_the_configuration_file(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("store:\n  path: data\n  duckdb_temp_directory: spill\n", encoding="utf-8")
    assert load_config(path).store.duckdb_temp_directory == (tmp_path / "spill").resolve()


def test_a_bad_memory_limit_is_shown_at_its_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("store:\n  path: data\n  duckdb_memory_limit: plenty\n", "w.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "w.yaml:3:24: store.duckdb_memory_limit: Value error, a size such as 2GB or 512MB, not 'plenty'"]



def test_an_analysts_connection_takes_them_too(tmp_path: Path) -> None:
    from store import connect

    init_store(tmp_path / "data")
    use_duckdb_settings(StoreConfig(duckdb_memory_limit="256MB", duckdb_temp_directory=tmp_path / "spill"))
    try:
        con = connect(tmp_path / "data")
        try:
            assert con.execute("SELECT current_setting('temp_directory')").fetchone() == (str(tmp_path / "spill"),)
        finally:
            con.close()
    finally:
        use_duckdb_settings(None)
