"""The ``store`` section of the configuration file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["StoreConfig"]


class StoreConfig(BaseModel):
    """Where and how spans are stored.

    Attributes:
        path: the data directory (holds ``store.json`` and ``spans/date=YYYY-MM-DD/*.parquet``).
        retention_days: drop date partitions older than this many days; ``None`` keeps everything.
        flush_interval_s: how often buffered spans are written out as a new segment file.
        compaction_interval_s: how often small segments are merged and retention applied.
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
