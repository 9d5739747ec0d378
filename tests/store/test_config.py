"""The store section of the configuration."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from store import StoreConfig


def test_defaults() -> None:
    config = StoreConfig()
    assert config.path == Path("./data")
    assert config.retention_days is None
    assert config.flush_interval_s == 5.0
    assert config.compaction_interval_s == 300.0


def test_values_are_validated() -> None:
    assert StoreConfig(path="x", retention_days=30, flush_interval_s=0.5).path == Path("x")
    for bad in ({"retention_days": 0}, {"flush_interval_s": 0}, {"flush_interval_s": -1}, {"compaction_interval_s": 0},
                {"unknown": 1}):
        with pytest.raises(pydantic.ValidationError):
            StoreConfig(**bad)


def test_frozen() -> None:
    config = StoreConfig()
    with pytest.raises(pydantic.ValidationError):
        config.retention_days = 3  # type: ignore[misc]


def test_maintenance_from_config(tmp_path: Path) -> None:
    from store import Maintenance, init_store

    init_store(tmp_path)
    maintenance = Maintenance.from_config(StoreConfig(path=tmp_path, retention_days=7))
    report = maintenance.run_once()
    assert report.merged == [] and maintenance.passes == 1


def test_duckdb_memory_limit_and_temp_directory() -> None:
    assert StoreConfig().duckdb_memory_limit == "2GB"
    assert StoreConfig().duckdb_temp_directory is None
    assert StoreConfig(duckdb_memory_limit=" 512MiB ").duckdb_memory_limit == "512MiB"
    for bad in ("lots", "2", "-1GB", "2 GBs", "80%"):
        with pytest.raises(pydantic.ValidationError, match="a size such as 2GB"):
            StoreConfig(duckdb_memory_limit=bad)
