"""Analysis: runs and steps as DataFrames, and the judgements made on them.

Imports ``store`` only among Wardwatch's packages; ``dashboard`` imports it.
"""

from analysis.percentiles import Percentile, percentile, percentile_table, rank_interval
from analysis.store import RUN_COLUMNS, STEP_COLUMNS, Store, open_store

__all__ = [
    "RUN_COLUMNS",
    "STEP_COLUMNS",
    "Percentile",
    "Store",
    "open_store",
    "percentile",
    "percentile_table",
    "rank_interval",
]
