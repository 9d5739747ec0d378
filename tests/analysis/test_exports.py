"""The public names of the analysis package, pinned."""

import analysis


def test_public_names() -> None:
    assert sorted(analysis.__all__) == [
        "AlertWindow", "Apdex", "BudgetResult", "ClinicalCalendar", "MISSED_SLOT_COLUMNS",
        "Percentile", "REQUEST_COLUMNS", "RUN_COLUMNS",
        "STEP_COLUMNS", "Store", "alert_windows", "apdex", "apdex_table", "budget_consumed",
        "burn_rate", "burn_rate_alerts", "calendar_month", "error_budget", "month_budget_minutes",
        "occurrences", "open_store", "parse_duration", "percentile", "percentile_table",
        "rank_interval", "ratio_timeslices", "timeslices",
    ]
    for name in analysis.__all__:
        assert getattr(analysis, name) is not None
