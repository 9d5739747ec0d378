"""Analysis: runs and steps as DataFrames, and the judgements made on them.

- ``store``: :func:`open_store` and the runs, steps and requests frames;
- ``percentiles``, ``apdex``, ``budget``: the published formulas;
- ``calendar``: clinical periods per site in local time;
- ``sla``: SLAs as the contract computes them; ``objectives``: experience as users feel it;
- ``watermelon``: where the two disagree, with the lenses that explain why;
- ``findings``: :func:`find_stories`, every finding as people read it (the one source of them);
- ``alerts``: burn-rate alerts for both; ``changes`` and ``ranktest``: change impact;
- ``report``: the month's report; ``openslo``: OpenSLO in and out;
- ``query``: every figure the dashboard shows, defined once as SQL over exact or pre-aggregated
  rows; ``waterfall``: one run's spans and marks; ``status``: now vs the past week.

Imports ``store`` only among Wardwatch's packages; ``dashboard`` imports it.

Every public name is imported on first use (PEP 562): importing ``analysis.config`` alone, as a
probe's configuration does, loads neither pandas nor DuckDB.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.store import RunFilter
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
    from analysis.findings import Figure, FindingInputs, SiteLabel, Story, WorkflowLabel, find_stories
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
    from analysis.percentiles import (
        Percentile,
        percentile,
        percentile_table,
        rank_interval,
    )
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
    from analysis.sla import (
        SLAResult,
        evaluate_sla,
        load_exclusions_csv,
        parse_month,
        sla_window,
    )
    from analysis.status import StatusRules, current_status
    from analysis.store import (
        MISSED_SLOT_COLUMNS,
        REQUEST_COLUMNS,
        RUN_COLUMNS,
        STEP_COLUMNS,
        FrameCache,
        Store,
        open_store,
    )
    from analysis.watermelon import Finding, Lens, TimeLost, find_watermelons
    from store import StoreError

# public name -> the module that defines it
_SOURCES = {
    "alert_windows": "analysis.budget",
    "AlertWindow": "analysis.budget",
    "Apdex": "analysis.apdex",
    "apdex": "analysis.apdex",
    "apdex_table": "analysis.apdex",
    "budget_consumed": "analysis.budget",
    "BudgetResult": "analysis.budget",
    "build_report": "analysis.report",
    "burn_rate": "analysis.budget",
    "burn_rate_alerts": "analysis.budget",
    "calendar_month": "analysis.budget",
    "change_impact": "analysis.changes",
    "ChangeEventConfig": "analysis.config",
    "check_analysis_references": "analysis.config",
    "ClinicalCalendar": "analysis.calendar",
    "current_status": "analysis.status",
    "error_budget": "analysis.budget",
    "evaluate_objective": "analysis.objectives",
    "evaluate_sla": "analysis.sla",
    "ExclusionConfig": "analysis.config",
    "find_stories": "analysis.findings",
    "find_watermelons": "analysis.watermelon",
    "Figure": "analysis.findings",
    "FindingInputs": "analysis.findings",
    "SiteLabel": "analysis.findings",
    "Story": "analysis.findings",
    "WorkflowLabel": "analysis.findings",
    "Finding": "analysis.watermelon",
    "FrameCache": "analysis.store",
    "Lens": "analysis.watermelon",
    "load_changes_csv": "analysis.changes",
    "load_exclusions_csv": "analysis.sla",
    "mann_whitney_u": "analysis.ranktest",
    "MISSED_SLOT_COLUMNS": "analysis.store",
    "month_budget_minutes": "analysis.budget",
    "objective_alerts": "analysis.alerts",
    "ObjectiveConfig": "analysis.config",
    "ObjectiveResult": "analysis.objectives",
    "objectives_to_openslo": "analysis.openslo",
    "occurrences": "analysis.budget",
    "open_store": "analysis.store",
    "OpenSLOObjective": "analysis.openslo",
    "parse_duration": "analysis.budget",
    "parse_month": "analysis.sla",
    "Percentile": "analysis.percentiles",
    "percentile": "analysis.percentiles",
    "percentile_table": "analysis.percentiles",
    "PeriodConfig": "analysis.config",
    "rank_interval": "analysis.percentiles",
    "RankTest": "analysis.ranktest",
    "ratio_timeslices": "analysis.budget",
    "read_openslo": "analysis.openslo",
    "render": "analysis.report",
    "Report": "analysis.report",
    "REPORT_FORMATS": "analysis.report",
    "REQUEST_COLUMNS": "analysis.store",
    "RUN_COLUMNS": "analysis.store",
    "RunFilter": "analysis.store",
    "ServiceHoursConfig": "analysis.config",
    "sla_alerts": "analysis.alerts",
    "sla_window": "analysis.sla",
    "SLAConfig": "analysis.config",
    "SLAResult": "analysis.sla",
    "StatusRules": "analysis.status",
    "STEP_COLUMNS": "analysis.store",
    "Store": "analysis.store",
    "StoreError": "store",
    "TaskVolumeConfig": "analysis.config",
    "TimeLost": "analysis.watermelon",
    "timeslices": "analysis.budget",
    "to_html": "analysis.report",
    "to_json": "analysis.report",
    "to_markdown": "analysis.report",
    "to_objective_configs": "analysis.openslo",
}

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
    "find_stories",
    "find_watermelons",
    "Figure",
    "FindingInputs",
    "SiteLabel",
    "Story",
    "WorkflowLabel",
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

def __getattr__(name: str) -> Any:
    try:
        module = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))


class _Package(types.ModuleType):
    """Keeps ``analysis.apdex`` the function when its module ``analysis/apdex.py`` is imported.

    Importing a submodule sets it as an attribute of its package; the eager imports this package
    once had overwrote that with the function of the same name, which lazy imports no longer do.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            value = getattr(value, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
