"""Analysis: runs and steps as DataFrames, and the judgements made on them.

Imports ``store`` only among Wardwatch's packages; ``dashboard`` imports it.
"""

from analysis.apdex import Apdex, apdex, apdex_table
from analysis.percentiles import Percentile, percentile, percentile_table, rank_interval
from analysis.store import RUN_COLUMNS, STEP_COLUMNS, Store, open_store

__all__ = [
    "Apdex",
    "RUN_COLUMNS",
    "STEP_COLUMNS",
    "Percentile",
    "Store",
    "apdex",
    "apdex_table",
    "open_store",
    "percentile",
    "percentile_table",
    "rank_interval",
]
