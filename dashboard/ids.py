"""Component ids, in one place so pages and tests agree on them."""

REFRESH = "refresh-interval"
RUNS_TABLE = "runs-table"
RUNS_SUMMARY = "runs-summary"
STEP_CHART = "step-duration-chart"
SIMULATED_BANNER = "simulated-banner"
