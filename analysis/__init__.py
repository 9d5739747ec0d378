"""Analysis: runs and steps as DataFrames, and the judgements made on them.

- ``store``: :func:`open_store` and the runs, steps and requests frames;
- ``percentiles``, ``apdex``, ``budget``: the published formulas;
- ``calendar``: clinical periods per site in local time;
- ``sla``: SLAs as the contract computes them; ``objectives``: experience as users feel it;
- ``watermelon``: where the two disagree, with the lenses that explain why;
- ``alerts``: burn-rate alerts for both; ``changes`` and ``ranktest``: change impact;
- ``report``: the month's report; ``openslo``: OpenSLO in and out;
- ``aggregates``: grouped figures computed in DuckDB for the dashboard; ``status``: now vs the past week.

Imports ``store`` only among Wardwatch's packages; ``dashboard`` imports it.
"""

from analysis.aggregates import RunFilter
from analysis.alerts import objective_alerts, sla_alerts
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
from analysis.changes import change_impact, load_changes_csv
from analysis.config import (
    ChangeEventConfig,
    ExclusionConfig,
    ObjectiveConfig,
    PeriodConfig,
    ServiceHoursConfig,
    SLAConfig,
    TaskVolumeConfig,
    check_analysis_references,
)
from analysis.objectives import ObjectiveResult, evaluate_objective
from analysis.openslo import (
    OpenSLOObjective,
    objectives_to_openslo,
    read_openslo,
    to_objective_configs,
)
from analysis.percentiles import Percentile, percentile, percentile_table, rank_interval
from analysis.ranktest import RankTest, mann_whitney_u
from analysis.report import (
    REPORT_FORMATS,
    Report,
    build_report,
    render,
    to_html,
    to_json,
    to_markdown,
)
from analysis.sla import SLAResult, evaluate_sla, load_exclusions_csv, parse_month, sla_window
from analysis.store import (
    MISSED_SLOT_COLUMNS,
    REQUEST_COLUMNS,
    RUN_COLUMNS,
    STEP_COLUMNS,
    FrameCache,
    Store,
    open_store,
)
from store import StoreError
from analysis.status import StatusRules, current_status
from analysis.watermelon import Finding, Lens, TimeLost, find_watermelons

__all__ = [
    "RunFilter",
    "StatusRules",
    "StoreError",
    "current_status",
    "AlertWindow",
    "Apdex",
    "BudgetResult",
    "ChangeEventConfig",
    "ClinicalCalendar",
    "ExclusionConfig",
    "Finding",
    "FrameCache",
    "Lens",
    "MISSED_SLOT_COLUMNS",
    "ObjectiveConfig",
    "ObjectiveResult",
    "OpenSLOObjective",
    "Percentile",
    "PeriodConfig",
    "REPORT_FORMATS",
    "REQUEST_COLUMNS",
    "RUN_COLUMNS",
    "RankTest",
    "Report",
    "SLAConfig",
    "SLAResult",
    "STEP_COLUMNS",
    "ServiceHoursConfig",
    "Store",
    "TaskVolumeConfig",
    "TimeLost",
    "alert_windows",
    "apdex",
    "apdex_table",
    "budget_consumed",
    "build_report",
    "burn_rate",
    "burn_rate_alerts",
    "calendar_month",
    "change_impact",
    "check_analysis_references",
    "error_budget",
    "evaluate_objective",
    "evaluate_sla",
    "find_watermelons",
    "load_changes_csv",
    "load_exclusions_csv",
    "mann_whitney_u",
    "month_budget_minutes",
    "objective_alerts",
    "objectives_to_openslo",
    "occurrences",
    "open_store",
    "parse_duration",
    "parse_month",
    "percentile",
    "percentile_table",
    "rank_interval",
    "ratio_timeslices",
    "read_openslo",
    "render",
    "sla_alerts",
    "sla_window",
    "timeslices",
    "to_html",
    "to_json",
    "to_markdown",
    "to_objective_configs",
]
