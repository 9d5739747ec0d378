"""The ``store`` section of the configuration file, and the DuckDB settings every reader applies."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_DUCKDB_MEMORY_LIMIT", "StoreConfig", "apply_duckdb_settings", "use_duckdb_settings"]

# A reader (the report, the dashboard, the alerts, a notebook) is one of several processes on the
# machine. DuckDB's own default is 80% of RAM per process; 2 GB lets four readers and the writer
# share a 24 GB machine with room to spare. What does not fit spills to the temp directory.
DEFAULT_DUCKDB_MEMORY_LIMIT = "2GB"
_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


class StoreConfig(BaseModel):
    """Where and how spans are stored.

    Attributes:
        path: the data directory (holds ``store.json`` and ``spans/date=YYYY-MM-DD/*.parquet``).
        retention_days: drop date partitions older than this many days; ``None`` keeps everything.
        flush_interval_s: how often buffered spans are written out as a new segment file.
        compaction_interval_s: how often small segments are merged and retention applied.
        duckdb_memory_limit: the most memory DuckDB takes in each process that reads the store.
        duckdb_temp_directory: where DuckDB spills what does not fit; ``None``: a directory of
            the process's own under the system's temporary directory.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path = Field(default=Path("./data"), description="The data directory.")
    retention_days: int | None = Field(
        default=None, gt=0, description="Drop date partitions older than this many days."
    )
    flush_interval_s: float = Field(
        default=5.0, gt=0, description="Seconds between flushes of buffered spans to a segment."
    )
    compaction_interval_s: float = Field(
        default=300.0, gt=0, description="Seconds between compaction and retention passes."
    )
    duckdb_memory_limit: str = Field(
        default=DEFAULT_DUCKDB_MEMORY_LIMIT,
        description="The most memory DuckDB may take in each process that reads the store (the "
                    "report, the dashboard, the alerts), e.g. 2GB or 512MB; what does not fit "
                    "spills to duckdb_temp_directory. DuckDB's own default is 80% of RAM per process.",
    )
    duckdb_temp_directory: Path | None = Field(
        default=None,
        description="Where DuckDB spills what does not fit in its memory limit (relative to the "
                    "configuration file); default: a directory of each process's own under the "
                    "system's temporary directory.",
    )

    @field_validator("duckdb_memory_limit")
    @classmethod
    def _size(cls, value: str) -> str:
        if not _SIZE.match(value):
            raise ValueError(f"a size such as 2GB or 512MB, not {value!r}")
        return value.strip()


class _Connection(Protocol):
    def execute(self, query: str, parameters: Any = ...) -> Any: ...


_active: StoreConfig | None = None


def use_duckdb_settings(config: StoreConfig | None) -> None:
    """Make ``config``'s DuckDB settings those of every store this process opens from now on
    (``None``: the defaults). The command line calls it once with the loaded configuration."""
    global _active
    _active = config


def apply_duckdb_settings(con: _Connection, config: StoreConfig | None = None) -> None:
    """Set DuckDB's memory limit and temp directory on ``con`` from ``config`` (default: the
    settings of :func:`use_duckdb_settings`, else the defaults)."""
    chosen = config or _active or StoreConfig()
    temp = chosen.duckdb_temp_directory or Path(tempfile.gettempdir()) / f"wardwatch-duckdb-{os.getpid()}"
    con.execute(f"SET memory_limit = '{chosen.duckdb_memory_limit}'")
    con.execute("SET temp_directory = ?", [str(temp)])
