"""The public names of the analysis package, pinned."""

import analysis


def test_public_names() -> None:
    assert sorted(analysis.__all__) == [
        "AlertWindow", "Apdex", "BudgetResult", "ChangeEventConfig", "ClinicalCalendar",
        "ExclusionConfig", "Figure", "Finding", "FindingInputs", "FrameCache", "Lens", "MISSED_SLOT_COLUMNS",
        "ObjectiveConfig", "ObjectiveResult", "OpenSLOObjective", "Percentile", "PeriodConfig",
        "REPORT_FORMATS", "REQUEST_COLUMNS", "RUN_COLUMNS", "RankTest", "Report", "RunFilter", "SLAConfig",
        "SLAResult", "STEP_COLUMNS", "ServiceHoursConfig", "SiteLabel", "StatusRules", "Store", "StoreError", "Story",
        "TaskVolumeConfig", "TimeLost", "WorkflowLabel",
        "alert_windows", "apdex", "apdex_table", "budget_consumed", "build_report", "burn_rate",
        "burn_rate_alerts", "calendar_month", "change_impact", "check_analysis_references", "current_status",
        "error_budget",
        "evaluate_objective", "evaluate_sla", "find_stories", "find_watermelons", "load_changes_csv",
        "load_exclusions_csv", "mann_whitney_u", "month_budget_minutes", "objective_alerts",
        "objectives_to_openslo",
        "occurrences", "open_store", "parse_duration", "parse_month", "percentile",
        "percentile_table", "rank_interval", "ratio_timeslices", "read_openslo", "render", "sla_alerts",
        "sla_window",
        "timeslices", "to_html", "to_json", "to_markdown", "to_objective_configs",
    ]
    for name in analysis.__all__:
        assert getattr(analysis, name) is not None
