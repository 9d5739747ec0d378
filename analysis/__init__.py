"""Analysis: runs and steps as DataFrames, and the judgements made on them.

Imports ``store`` only among Wardwatch's packages; ``dashboard`` imports it.
"""

from analysis.apdex import Apdex, apdex, apdex_table
from analysis.budget import (
    AlertWindow,
    BudgetResult,
    alert_windows,
    budget_consumed,
    burn_rate,
    burn_rate_alerts,
    calendar_month,
    error_budget,
    month_budget_minutes,
    occurrences,
    parse_duration,
    ratio_timeslices,
    timeslices,
)
from analysis.calendar import ClinicalCalendar
from analysis.percentiles import Percentile, percentile, percentile_table, rank_interval
from analysis.store import (
    MISSED_SLOT_COLUMNS,
    REQUEST_COLUMNS,
    RUN_COLUMNS,
    STEP_COLUMNS,
    Store,
    open_store,
)

__all__ = [
    "AlertWindow",
    "Apdex",
    "BudgetResult",
    "ClinicalCalendar",
    "MISSED_SLOT_COLUMNS",
    "Percentile",
    "REQUEST_COLUMNS",
    "RUN_COLUMNS",
    "STEP_COLUMNS",
    "Store",
    "alert_windows",
    "apdex",
    "apdex_table",
    "budget_consumed",
    "burn_rate",
    "burn_rate_alerts",
    "calendar_month",
    "error_budget",
    "month_budget_minutes",
    "occurrences",
    "open_store",
    "parse_duration",
    "percentile",
    "percentile_table",
    "rank_interval",
    "ratio_timeslices",
    "timeslices",
]
