"""Reading the store: an in-memory DuckDB connection with views over the Parquet segments.

Views:
- ``spans``: every stored span, every column of ``store.schema``, plus the partition ``date``.
- ``runs``: one row per workflow run (root spans of type ``run``).
- ``steps``: one row per workflow step.
- ``requests``: one row per HTTP request: the probe's (``request`` spans, and ``step`` spans
  that made a single request, and ``auth`` spans) and the EPR's own server spans joined to
  the probe's trace (``source`` = ``probe`` or ``server``), and the requests a browser workflow's
  page made (``page_request`` spans, ``source`` = ``page``).
- ``missed_slots``: one row per slot that passed without a run.

The views are bound to the segment files that existed when they were made: call
:func:`refresh` (or use ``analysis.open_store``, which does so when the files change) to see
segments written since. An empty store gives the same views with zero rows.

Segments merged by compaction are left out as soon as the merged segment is visible: a merged
segment records in its Parquet metadata (``wardwatch.replaces``) every segment it replaces, so
a reader never sees a span twice, whichever moment it lists the files at.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from store import schema
from store.config import apply_duckdb_settings
from store.errors import StoreError
from store.layout import PARTITION_KEY, SPAN_ARROW_SCHEMA, check_store, duckdb_type
from store.segments import list_segments, read_replaces

__all__ = ["VIEWS", "connect", "create_views", "list_segments", "read_replaces", "refresh"]

VIEWS = ("spans", "runs", "steps", "requests", "missed_slots")


def _lit(text: str) -> str:
    """``text`` as a SQL string literal (for our own constants and file paths, never user values)."""
    return "'" + text.replace("'", "''") + "'"


def _spans_source(segments: Sequence[Path]) -> str:
    if not segments:
        columns = [
            f'CAST(NULL AS {duckdb_type(f.type)}) AS "{f.name}"' for f in SPAN_ARROW_SCHEMA
        ]
        columns.append(f"CAST(NULL AS DATE) AS {PARTITION_KEY}")
        return "SELECT " + ", ".join(columns) + " WHERE false"
    files = ", ".join(_lit(str(p)) for p in segments)
    return (
        f"SELECT * FROM read_parquet([{files}], hive_partitioning = true, union_by_name = true, "
        f"hive_types = {{{_lit(PARTITION_KEY)}: 'DATE'}})"
    )


# The views read only typed columns (those promoted at write time by ``store.promote``), never the
# attribute maps: decoding a map costs every key and value of every span.


def _runs_sql() -> str:
    s = schema
    return f"""
SELECT
    "{s.TRACE_ID}" AS trace_id,
    "{s.SPAN_ID}" AS span_id,
    "{s.TIMESTAMP}" AS start,
    "{s.WORKFLOW}" AS workflow,
    "{s.SITE}" AS site,
    "{s.RUN_STATUS}" AS status,
    "{s.ERROR_TYPE_COLUMN}" AS error_type,
    "{s.WAITING_S}" AS waiting_s,
    "{s.DURATION}" / 1e9 AS wall_s,
    "{s.SLOT}" AS slot,
    "{s.SLOT_OFFSET_S}" AS slot_offset_s,
    "{s.SIMULATED}" AS simulated,
    "{s.SITE_TIMEZONE}" AS site_timezone,
    "{s.PROBE_ID}" AS probe_id,
    "{s.SERVICE_NAME}" AS service_name,
    "{s.DURATION}" AS duration_ns
FROM spans
WHERE "{s.SPAN_TYPE}" = {_lit(s.SPAN_TYPE_RUN)}
"""


def _derived_status(alias: str, failed_on_5xx: bool) -> str:
    """A step's or request's status where no run status is recorded on it."""
    s = schema
    error_type = f'{alias}."{s.ERROR_TYPE_COLUMN}"'
    server_error = f' OR {alias}."{s.HTTP_STATUS_CODE}" >= 500' if failed_on_5xx else ""
    return (
        f"CASE WHEN {error_type} = 'timeout' THEN {_lit(s.RUN_TIMED_OUT)} "
        f"WHEN {error_type} IS NOT NULL OR {alias}.\"{s.STATUS_CODE}\" = 'Error'{server_error} "
        f"THEN {_lit(s.RUN_FAILED)} ELSE {_lit(s.RUN_OK)} END"
    )


def _with_run_fallback(select: str, where: str, needs_run: str, joins: str = "") -> str:
    """``select`` over spans ``sp`` matching ``where``, joined to their trace's run only where
    ``needs_run`` holds.

    ``select`` names the run's columns ``{run_workflow}`` and ``{run_site}``. A probe span carries
    its own workflow and site; joining every span to its run on the trace id would double the
    scan, so only spans without them (the EPR's server spans, imported spans) pay for the join,
    and only their traces' runs are looked up. ``joins`` follows ``FROM spans AS sp`` (a filter
    such as an anti join). Never ``SELECT *`` here: the maps would be decoded.
    """
    s = schema
    matching = f"FROM spans AS sp {joins} WHERE ({where})"
    return f"""
{select.format(run_workflow="NULL", run_site="NULL")}
{matching} AND NOT coalesce({needs_run}, false)
UNION ALL
{select.format(run_workflow="run.workflow", run_site="run.site")}
FROM spans AS sp {joins}
LEFT JOIN (
    SELECT "{s.TRACE_ID}" AS trace_id, any_value("{s.WORKFLOW}") AS workflow,
           any_value("{s.SITE}") AS site
    FROM spans
    WHERE "{s.SPAN_TYPE}" = {_lit(s.SPAN_TYPE_RUN)} AND "{s.TRACE_ID}" IN (
        SELECT sp."{s.TRACE_ID}" {matching} AND coalesce({needs_run}, false))
    GROUP BY ALL
) AS run ON run.trace_id = sp."{s.TRACE_ID}"
WHERE ({where}) AND coalesce({needs_run}, false)
"""


def _steps_sql() -> str:
    s = schema
    select = f"""
SELECT
    sp."{s.TRACE_ID}" AS trace_id,
    sp."{s.SPAN_ID}" AS span_id,
    sp."{s.PARENT_SPAN_ID}" AS parent_span_id,
    sp."{s.TIMESTAMP}" AS start,
    coalesce(sp."{s.WORKFLOW}", {{run_workflow}}) AS workflow,
    sp."{s.SITE}" AS site,
    sp."{s.STEP}" AS step,
    sp."{s.STEP_INDEX}"::INTEGER AS step_index,
    coalesce(sp."{s.RUN_STATUS}", {_derived_status("sp", failed_on_5xx=False)}) AS status,
    sp."{s.ERROR_TYPE_COLUMN}" AS error_type,
    sp."{s.HTTP_STATUS_CODE}"::INTEGER AS http_status,
    sp."{s.DURATION}" / 1e9 AS duration_s,
    sp."{s.DNS_S}" AS dns_s,
    sp."{s.CONNECT_S}" AS connect_s,
    sp."{s.TLS_S}" AS tls_s,
    sp."{s.TTFB_S}" AS ttfb_s,
    sp."{s.TRANSFER_S}" AS transfer_s,
    sp."{s.RESPONSE_BYTES}" AS response_bytes,
    sp."{s.HTTP_METHOD}" AS http_method,
    sp."{s.URL_TEMPLATE_COLUMN}" AS url_template,
    sp."{s.BUNDLE_PAGES}"::INTEGER AS bundle_pages,
    sp."{s.SIMULATED}" AS simulated,
    sp."{s.DURATION}" AS duration_ns"""
    return _with_run_fallback(
        select, f'sp."{s.SPAN_TYPE}" = {_lit(s.SPAN_TYPE_STEP)}', f'sp."{s.WORKFLOW}" IS NULL'
    )


def _requests_sql() -> str:
    s = schema
    probe_types = ", ".join(_lit(t) for t in (s.SPAN_TYPE_REQUEST, s.SPAN_TYPE_AUTH, s.SPAN_TYPE_PAGE_REQUEST))
    select = f"""
SELECT
    sp."{s.TRACE_ID}" AS trace_id,
    sp."{s.SPAN_ID}" AS span_id,
    sp."{s.PARENT_SPAN_ID}" AS parent_span_id,
    sp."{s.TIMESTAMP}" AS start,
    coalesce(sp."{s.WORKFLOW}", {{run_workflow}}) AS workflow,
    coalesce(sp."{s.SITE}", {{run_site}}) AS site,
    sp."{s.STEP}" AS step,
    CASE WHEN sp."{s.SPAN_KIND}" = 'Server' THEN 'server'
         WHEN sp."{s.SPAN_TYPE}" = {_lit(s.SPAN_TYPE_PAGE_REQUEST)} THEN {_lit(s.SOURCE_PAGE)}
         ELSE 'probe' END AS source,
    coalesce(sp."{s.SPAN_TYPE}", 'server') AS span_type,
    sp."{s.HTTP_METHOD}" AS http_method,
    sp."{s.URL_TEMPLATE_COLUMN}" AS url_template,
    sp."{s.HTTP_STATUS_CODE}"::INTEGER AS http_status,
    {_derived_status("sp", failed_on_5xx=True)} AS status,
    sp."{s.ERROR_TYPE_COLUMN}" AS error_type,
    sp."{s.DURATION}" / 1e9 AS duration_s,
    sp."{s.SERVICE_NAME}" AS service_name,
    sp."{s.SIMULATED}" AS simulated,
    sp."{s.DURATION}" AS duration_ns"""
    # A step that made several requests is represented by its request spans, not by itself.
    without_requests = f"""ANTI JOIN (
        SELECT DISTINCT "{s.TRACE_ID}" AS trace_id, "{s.PARENT_SPAN_ID}" AS span_id
        FROM spans WHERE "{s.SPAN_TYPE}" = {_lit(s.SPAN_TYPE_REQUEST)}
    ) AS parent ON parent.trace_id = sp."{s.TRACE_ID}" AND parent.span_id = sp."{s.SPAN_ID}"
    """
    needs_run = f'sp."{s.WORKFLOW}" IS NULL OR sp."{s.SITE}" IS NULL'
    probe_requests = _with_run_fallback(select, f'sp."{s.SPAN_TYPE}" IN ({probe_types})', needs_run)
    server_spans = _with_run_fallback(
        select, f'sp."{s.SPAN_KIND}" = \'Server\' AND sp."{s.SPAN_TYPE}" IS NULL', needs_run
    )
    # A browser step is no request (it has no method); the page's requests stand for it.
    single_request_steps = _with_run_fallback(
        select, f'sp."{s.SPAN_TYPE}" = {_lit(s.SPAN_TYPE_STEP)} AND sp."{s.HTTP_METHOD}" IS NOT NULL',
        needs_run, without_requests,
    )
    return f"{probe_requests}\nUNION ALL\n{single_request_steps}\nUNION ALL\n{server_spans}"


def _missed_slots_sql() -> str:
    s = schema
    return f"""
SELECT
    "{s.TRACE_ID}" AS trace_id,
    "{s.SPAN_ID}" AS span_id,
    coalesce("{s.SLOT}", "{s.TIMESTAMP}") AS slot,
    "{s.WORKFLOW}" AS workflow,
    "{s.SITE}" AS site,
    "{s.MISSED_REASON}" AS reason,
    "{s.SIMULATED}" AS simulated
FROM spans
WHERE "{s.SPAN_TYPE}" = {_lit(s.SPAN_TYPE_MISSED_SLOT)}
"""


def create_views(con: duckdb.DuckDBPyConnection, segments: Sequence[Path], *, names: Sequence[str] = VIEWS,
                 temporary: bool = False) -> None:
    """(Re)create the views on ``con`` over exactly the given segment files (none: empty views).

    Args:
        names: which of :data:`VIEWS` to make (``spans`` always is: the others read it). Binding
            ``spans`` alone takes about 4 ms; the four others add about 60 ms.
        temporary: make them visible to ``con`` only (for a cursor of a shared database).
    """
    unknown = set(names) - set(VIEWS)
    if unknown:
        raise ValueError(f"unknown views {sorted(unknown)}; choose from {VIEWS}")
    kind = "TEMP VIEW" if temporary else "VIEW"
    con.execute(f"CREATE OR REPLACE {kind} spans AS {_spans_source(segments)}")
    bodies = {"runs": _runs_sql, "steps": _steps_sql, "requests": _requests_sql, "missed_slots": _missed_slots_sql}
    for name, body in bodies.items():
        if name in names:
            con.execute(f"CREATE OR REPLACE {kind} {name} AS {body()}")


def refresh(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Point the views of a connection from :func:`connect` at the segments present now.

    Raises:
        StoreError: a segment vanished while the views were being made (try again).
    """
    try:
        create_views(con, list_segments(Path(path)))
    except duckdb.IOException as exc:
        raise StoreError(f"the store at {path} changed while reading it: {exc}") from exc


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the store's views over the segments present now.

    The session time zone is UTC, so timestamps come back in UTC; DuckDB's memory limit and temp
    directory are the configuration's (``store.config.apply_duckdb_settings``).

    Raises:
        StoreError: ``path`` is not a Wardwatch store or holds another schema version.
    """
    check_store(Path(path))
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        apply_duckdb_settings(con)
        create_views(con, list_segments(Path(path)))
    except duckdb.Error as exc:
        con.close()
        raise StoreError(f"cannot read the store at {path}: {exc}") from exc
    return con
