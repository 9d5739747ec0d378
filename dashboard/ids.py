"""Component ids, in one place so pages and tests agree on them."""

URL = "_pages_location"  # Dash's page router location: writing its search re-renders the page
FILTER = "filter"  # pattern-matching type of the filter controls: {"type": FILTER, "name": ...}
REFRESH = "refresh-interval"
SIMULATED_BANNER = "simulated-banner"

RUNS_TABLE = "runs-table"
RUNS_SUMMARY = "runs-summary"
BOARD = "watermelon-board"  # the overview's table: each workflow at each site
STEP_CHART = "step-duration-chart"
WATERFALL = "waterfall-chart"
MISSED_SLOTS = "missed-slots"

STATUS_LIST = "status-list"
STATUS_UPDATED = "status-updated"
STATUS_NOTICES = "status-notices"

HEATMAP = "time-of-day-heatmap"
HEATMAP_WIDER = "time-of-day-wider"  # the link to a window that fills the grid
PERIOD_COMPARISON = "period-comparison"

ECDF = "workflow-ecdf"
STEP_BREAKDOWN = "workflow-step-breakdown"
TIMELINE = "workflow-timeline"
APDEX = "workflow-apdex"

SITES_TABLE = "sites-table"
PHASES = "sites-phases"
PHASE_SENTENCES = "sites-phase-sentences"

REPORT_BUILD = "report-build"
REPORT_DOWNLOAD_HTML = "report-download-html"
REPORT_DOWNLOAD_CSV = "report-download-csv"
REPORT_DOWNLOAD = "report-download"
REPORT_MONTH = "report-month"
REPORT_DATA = "report-data"
REPORT_VIEW = "report-view"
REPORT_FRAME = "report-frame"
REPORT_POLL = "report-poll"  # ticks while the report is being built

FINDINGS_WINDOW = "findings-window"  # the filters the findings are for, as a query string
FINDINGS = "findings"
STORIES = "stories"  # the findings' list
SLA_BESIDE_EXPERIENCE = "sla-beside-experience"  # the picture: the SLA's view beside the clinicians'
FINDINGS_POLL = "findings-poll"  # ticks while the findings are being looked for

# Live mode: pattern-matching ids, one of each per page: {"type": LIVE_TICK, "page": <page>}
LIVE_TICK = "live-tick"  # the dcc.Interval that ticks while live mode is on
LIVE_BODY = "live-body"  # the part of a page that a tick re-renders
