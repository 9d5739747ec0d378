"""The span schema shared by every writer and reader of the store.

Column names follow the OpenTelemetry Collector's ClickHouse exporter (``otel_traces`` table), so
the same analysis can later run on ClickHouse fed by the Collector. A few typed columns are promoted
from attributes because every query filters on them (workflow, site, step, span type).

Attribute keys live here too: the store promotes them, the collector writes them and the analysis
reads them, and the store is the one package both others may import.
"""

from __future__ import annotations

# Bump when a column is added, removed or changes meaning; readers refuse data of another version.
# 1: the ClickHouse exporter's columns plus Workflow, Site, Step, SpanType.
# 2: the typed columns promoted at write time (below, "Promoted at write time, version 2").
SCHEMA_VERSION = 2

# -- Columns, as the ClickHouse exporter names them --------------------------------------------
TIMESTAMP = "Timestamp"  # span start, timestamp[ns, UTC]
TRACE_ID = "TraceId"  # 32 lowercase hex digits
SPAN_ID = "SpanId"  # 16 lowercase hex digits
PARENT_SPAN_ID = "ParentSpanId"  # "" for a root span
TRACE_STATE = "TraceState"
SPAN_NAME = "SpanName"
SPAN_KIND = "SpanKind"  # "Internal", "Server", "Client", "Producer", "Consumer", "Unspecified"
SERVICE_NAME = "ServiceName"
RESOURCE_ATTRIBUTES = "ResourceAttributes"  # map<string, string>
SCOPE_NAME = "ScopeName"
SCOPE_VERSION = "ScopeVersion"
SPAN_ATTRIBUTES = "SpanAttributes"  # map<string, string>; every value rendered as a string
DURATION = "Duration"  # int64 nanoseconds
STATUS_CODE = "StatusCode"  # "Unset", "Ok", "Error"
STATUS_MESSAGE = "StatusMessage"
EVENTS = "Events"  # list<struct<Timestamp, Name, Attributes map<string, string>>>

# -- Promoted typed columns (null where the attribute is absent) -----------------------------
WORKFLOW = "Workflow"  # from span attribute wardwatch.workflow
SITE = "Site"  # from span attribute wardwatch.site, else resource attribute wardwatch.site
STEP = "Step"  # from span attribute wardwatch.step
SPAN_TYPE = "SpanType"  # from span attribute wardwatch.span.type

# -- Attribute keys ------------------------------------------------------------------------------
# OpenTelemetry semantic conventions
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
URL_TEMPLATE = "url.template"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
USER_AGENT_SYNTHETIC_TYPE = "user_agent.synthetic.type"  # always "test" on probe spans
SERVICE_NAME_ATTR = "service.name"
HTTP_ROUTE = "http.route"  # on the testbed's server spans

# Ours
ATTR_SPAN_TYPE = "wardwatch.span.type"  # one of SPAN_TYPES
ATTR_WORKFLOW = "wardwatch.workflow"
ATTR_SITE = "wardwatch.site"  # resource attribute of the probe; the store promotes it
ATTR_SITE_TIMEZONE = "wardwatch.site.timezone"  # resource attribute, IANA name
ATTR_PROBE_ID = "wardwatch.probe.id"  # resource attribute
ATTR_SIMULATED = "wardwatch.simulated"  # resource attribute "true" on simulated history
ATTR_STEP = "wardwatch.step"
ATTR_STEP_INDEX = "wardwatch.step.index"  # 0-based position in the workflow
ATTR_RUN_STATUS = "wardwatch.run.status"  # one of RUN_STATUSES
ATTR_RUN_WAITING_S = "wardwatch.run.waiting_s"  # sum of step durations, think time excluded
ATTR_SLOT = "wardwatch.slot"  # scheduled moment, ISO 8601 UTC
ATTR_SLOT_OFFSET_S = "wardwatch.slot.offset_s"  # actual start minus slot, seconds
ATTR_MISSED_REASON = "wardwatch.missed.reason"  # on missed_slot spans: "busy", "probe_down", "not_stored"
ATTR_DNS_S = "wardwatch.http.dns_s"
ATTR_CONNECT_S = "wardwatch.http.connect_s"
ATTR_TLS_S = "wardwatch.http.tls_s"
ATTR_TTFB_S = "wardwatch.http.ttfb_s"
ATTR_TRANSFER_S = "wardwatch.http.transfer_s"
ATTR_RESPONSE_BYTES = "wardwatch.http.response_bytes"
ATTR_BUNDLE_PAGES = "wardwatch.bundle.pages"
# On the testbed's server spans (the testbed spells them itself: it imports nothing of ours).
ATTR_TESTBED_MODELLED_DELAY_S = "wardwatch.testbed.modelled_delay_s"
ATTR_TESTBED_FAULT = "wardwatch.testbed.fault"

SPAN_TYPE_RUN = "run"  # root span of one workflow run
SPAN_TYPE_STEP = "step"  # child of a run: one workflow step
SPAN_TYPE_REQUEST = "request"  # child of a step, when a step makes several HTTP requests
SPAN_TYPE_AUTH = "auth"  # fetching a token: its own span so its cost is visible
SPAN_TYPE_MISSED_SLOT = "missed_slot"  # a slot that passed without a run
SPAN_TYPES = (SPAN_TYPE_RUN, SPAN_TYPE_STEP, SPAN_TYPE_REQUEST, SPAN_TYPE_AUTH, SPAN_TYPE_MISSED_SLOT)

RUN_OK = "ok"
RUN_FAILED = "failed"
RUN_TIMED_OUT = "timed_out"
RUN_INTERRUPTED = "interrupted"
RUN_STATUSES = (RUN_OK, RUN_FAILED, RUN_TIMED_OUT, RUN_INTERRUPTED)

# The closed set of error.type values a probe records (k6-style families).
ERROR_TYPES = (
    "dns", "connect", "tls", "timeout", "http_4xx", "http_5xx", "auth", "assertion",
    "invalid_response",
    # Browser workflows: an uncaught script error in the page, a navigation that failed (the
    # document did not load), the page or the browser crashed or closed under the run.
    "browser_script", "browser_navigation", "browser_crash",
)

# -- Appended by the collector (append-only) ---------------------------------------------------
# On missed_slot spans with reason "probe_down": the last moment the probe was known to be alive
# (its last heartbeat before the restart), ISO 8601 UTC.
ATTR_MISSED_SINCE = "wardwatch.missed.since"
MISSED_BUSY = "busy"  # wardwatch.missed.reason: an earlier run of the same job was still going
MISSED_PROBE_DOWN = "probe_down"  # wardwatch.missed.reason: the probe process was not running
# wardwatch.missed.reason: the run happened, but its spans could not be written (a full or
# read-only disk) for longer than the writer could keep them in memory, and were dropped.
MISSED_NOT_STORED = "not_stored"

# A workflow's cleanup step (``cleanup:``), a child of the run like a step but not part of its
# waiting time, nor of the views' steps and requests; and on the run, how its cleanup went
# ("ok", "failed", "skipped": a value it needed was never extracted).
SPAN_TYPE_CLEANUP = "cleanup"
ATTR_CLEANUP_STATUS = "wardwatch.cleanup.status"

# -- Appended by the importers (append-only) ---------------------------------------------------
# Where an imported span came from: "server_log" for request timings imported from the EPR's own
# logs (stored as Server spans of their own trace), "otlp" for spans imported from OTLP JSON lines.
ATTR_SOURCE = "wardwatch.source"
SOURCE_SERVER_LOG = "server_log"
SOURCE_OTLP = "otlp"

# -- Appended by the collector (append-only) ---------------------------------------------------
# OpenTelemetry semantic convention: the query string of a probe request with every value
# replaced by "REDACTED" (the parameter names stay: which filters a step used, never their values).
URL_QUERY = "url.query"
REDACTED = "REDACTED"

# -- Promoted at write time, version 2 (append-only) -------------------------------------------
# Typed copies of the attributes every query reads, derived by ``store.promote`` from the maps
# (which stay as they are); null where the attribute is absent or does not parse.
RUN_STATUS = "RunStatus"  # wardwatch.run.status
WAITING_S = "WaitingS"  # wardwatch.run.waiting_s, double
STEP_INDEX = "StepIndex"  # wardwatch.step.index, int64
ERROR_TYPE_COLUMN = "ErrorType"  # error.type; null (not "") when there was no error
HTTP_STATUS_CODE = "HttpStatusCode"  # http.response.status_code, int64
HTTP_METHOD = "HttpMethod"  # http.request.method
URL_TEMPLATE_COLUMN = "UrlTemplate"  # url.template
DNS_S = "DnsS"  # wardwatch.http.dns_s, double
CONNECT_S = "ConnectS"  # wardwatch.http.connect_s
TLS_S = "TlsS"  # wardwatch.http.tls_s
TTFB_S = "TtfbS"  # wardwatch.http.ttfb_s
TRANSFER_S = "TransferS"  # wardwatch.http.transfer_s
RESPONSE_BYTES = "ResponseBytes"  # wardwatch.http.response_bytes, int64
BUNDLE_PAGES = "BundlePages"  # wardwatch.bundle.pages, int64
SLOT = "Slot"  # wardwatch.slot, timestamp[ns, UTC]
SLOT_OFFSET_S = "SlotOffsetS"  # wardwatch.slot.offset_s, double
MISSED_REASON = "MissedReason"  # wardwatch.missed.reason
SIMULATED = "Simulated"  # resource attribute wardwatch.simulated = "true"; never null
SITE_TIMEZONE = "SiteTimezone"  # resource attribute wardwatch.site.timezone
PROBE_ID = "ProbeId"  # resource attribute wardwatch.probe.id

# -- Appended by the observatory (append-only) -------------------------------------------------
# Resource attribute on an EPR's own server spans received by the observatory: the configured
# target (``targets`` key) they belong to.
ATTR_TARGET = "wardwatch.target"
# HTTP headers a probe sends with each batch to the observatory, for its view of the site's health
# (the protocol between ``collector.spool`` and ``observatory``; the store is the package both import).
SPOOL_HEADER = "X-Wardwatch-Spool"  # "batches=N; runs=N; oldest_age_s=N; dropped=N"
SENT_AT_HEADER = "X-Wardwatch-Sent-At"  # the probe's wall clock as the batch left, Unix seconds
PROBE_VERSION_HEADER = "X-Wardwatch-Probe-Version"
# Where the observatory keeps what it last heard from each site (JSON, replaced whole).
SITE_HEALTH_FILE = "observatory/sites.json"

# -- Appended by the browser runner (append-only) ------------------------------------------------
# A request the page made during a browser step (its resource timing): a child of the step span,
# with a URL template and a redacted query like the probe's own; ``source`` "page" in the
# requests view. Long tasks and the largest contentful paint are events on the step span.
SPAN_TYPE_PAGE_REQUEST = "page_request"
SOURCE_PAGE = "page"
ATTR_BROWSER_ACTION = "wardwatch.browser.action"  # goto, fill, click, press, or "wait"
ATTR_BROWSER_SELECTOR = "wardwatch.browser.selector"  # what the step waited for (from the config)
ATTR_LONG_TASKS = "wardwatch.browser.long_tasks"  # count of the step's long tasks
ATTR_LONG_TASKS_S = "wardwatch.browser.long_tasks_s"  # their summed duration, seconds
EVENT_LONG_TASK = "long_task"  # event attributes: wardwatch.duration_s
EVENT_LCP = "largest_contentful_paint"
EVENT_VISIBLE = "visible"  # the moment what the step waited for was on the screen
ATTR_EVENT_DURATION_S = "wardwatch.duration_s"
# A step during which the page loaded a document (a ``goto``, or a click that navigates) carries
# its navigation timing: seconds from the navigation's start (the document's time origin) to each
# milestone the page reached before the step ended, as the browser's Navigation Timing Level 2
# and Paint Timing define them; a milestone not reached by then is left out.
ATTR_NAV_TYPE = "wardwatch.browser.navigation.type"  # navigate, reload, back_forward, prerender
ATTR_NAV_RESPONSE_START_S = "wardwatch.browser.navigation.response_start_s"  # first byte of the document
ATTR_NAV_DOM_CONTENT_LOADED_S = "wardwatch.browser.navigation.dom_content_loaded_s"  # domContentLoadedEventEnd
ATTR_NAV_LOAD_S = "wardwatch.browser.navigation.load_s"  # loadEventEnd
ATTR_FCP_S = "wardwatch.browser.first_contentful_paint_s"
ATTR_LCP_S = "wardwatch.browser.largest_contentful_paint_s"  # the last candidate before the step ended
# A failed run of a workflow with ``screenshot_on_failure``: the PNG's path under the data
# directory's ``screenshots/`` (workflow/site/time-trace.png). The picture itself is never a span.
ATTR_BROWSER_SCREENSHOT = "wardwatch.browser.screenshot"
