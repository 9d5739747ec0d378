"""A large store made fast: realistic runs built as Arrow columns and written with ``write_spans``.

The shape follows the collector's spans (see ARCHITECTURE.md): one root ``run`` span per run and
one ``step`` child per step, seven steps a run, three workflows at three sites, over a month.
Step durations are log-normal around per-step medians; the community hospital adds network delay
to every step; ward rounds (weekdays 08:00-10:30 UTC) slow the notes step; 1% of runs fail with a
503 on their last step. Nothing here calls the tracer: columns are built with numpy and pyarrow,
so ten million spans take minutes (2.5 on the benchmark machine), not hours.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.results import Progress
from store import SPAN_ARROW_SCHEMA, init_store, write_spans
from store.layout import WRITTEN_ARROW_SCHEMA
from store import schema as s

__all__ = ["SITES", "STEPS_PER_RUN", "WORKFLOWS", "GeneratedStore", "generate_store", "span_table"]

WORKFLOWS = ("open-patient-record", "chart-observations", "ward-handover")
SITES = ("ward-7", "outpatient-clinic", "community-hospital")
STEPS_PER_RUN = 7
SPANS_PER_RUN = STEPS_PER_RUN + 1
_STEP_NAMES = ("find-patient", "read-patient", "encounters", "vital-signs", "medications", "allergies", "notes")
_STEP_TEMPLATES = ("/fhir/Patient", "/fhir/Patient/{id}", "/fhir/Encounter", "/fhir/Observation",
                   "/fhir/MedicationRequest", "/fhir/AllergyIntolerance", "/fhir/DocumentReference")
_STEP_MEDIAN_S = np.array([0.12, 0.08, 0.25, 0.30, 0.15, 0.10, 0.45])
_WORKFLOW_SCALE = np.array([1.0, 0.8, 1.3])
_SITE_NETWORK_S = np.array([0.0, 0.005, 0.040])
_THINK_S = 0.5
_FAIL_SHARE = 0.01
_NS = 1_000_000_000
MONTH_START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
# Runs per segment written: a 10M-span store's day (41,667 runs) is one segment, as before.
CHUNK_RUNS = 65_536


@dataclass(frozen=True)
class GeneratedStore:
    """What :func:`generate_store` wrote."""

    path: Path
    runs: int
    spans: int
    bytes: int
    seconds: float
    start: dt.datetime
    end: dt.datetime


def _hex_strings(raw: np.ndarray) -> pa.Array:
    """Rows of bytes (n, k) as an Arrow string array of 2k lowercase hex digits each."""
    n, k = raw.shape
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nibbles = np.empty((n, 2 * k), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 15
    data = digits[nibbles].tobytes()
    offsets = np.arange(0, 2 * k * (n + 1), 2 * k, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)])


def _pick(values: Sequence[str], index: np.ndarray) -> pa.Array:
    return pa.array(list(values), pa.string()).take(pa.array(index))


def _map(columns: Sequence[tuple[str, pa.Array, np.ndarray | None]], n: int) -> pa.MapArray:
    """A ``map<string, string>`` per row from named string columns; a column's mask leaves its key
    out of the rows where it is False."""
    k = len(columns)
    present = np.ones((n, k), dtype=bool)
    for j, (_key, _values, mask) in enumerate(columns):
        if mask is not None:
            present[:, j] = mask
    counts = present.sum(axis=1)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    column_index = np.broadcast_to(np.arange(k), (n, k))[present]
    value_index = (np.arange(k)[None, :] * n + np.arange(n)[:, None])[present]
    keys = pa.array([c[0] for c in columns], pa.string()).take(pa.array(column_index))
    values = pa.concat_arrays([c[1].cast(pa.string()) for c in columns]).take(pa.array(value_index))
    return pa.MapArray.from_arrays(pa.array(offsets), keys, values)


def _floats(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values, pa.float64()), pa.string())


def span_table(start_ns: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """The spans of runs starting at ``start_ns`` (int64 ns since the epoch, UTC), in the store's
    schema: each run's root span followed by its seven steps."""
    runs = len(start_ns)
    n = runs * SPANS_PER_RUN
    workflow = rng.integers(0, len(WORKFLOWS), runs)
    site = rng.integers(0, len(SITES), runs)
    failed = rng.random(runs) < _FAIL_SHARE
    seconds_of_day = (start_ns // _NS) % 86_400
    weekday = ((start_ns // (86_400 * _NS)) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    rounds = (weekday < 5) & (seconds_of_day >= 8 * 3600) & (seconds_of_day < 10 * 3600 + 1800)

    base = _STEP_MEDIAN_S[None, :] * _WORKFLOW_SCALE[workflow][:, None]
    step_s = base * rng.lognormal(0.0, 0.35, (runs, STEPS_PER_RUN)) + _SITE_NETWORK_S[site][:, None]
    step_s[:, 6] += np.where(rounds, rng.lognormal(np.log(2.0), 0.5, runs), 0.0)
    step_ns = (step_s * _NS).astype(np.int64)
    waiting_s = step_ns.sum(axis=1) / _NS
    think_ns = int(_THINK_S * _NS)
    step_start_ns = start_ns[:, None] + np.concatenate(
        [np.zeros((runs, 1), np.int64), np.cumsum(step_ns[:, :-1] + think_ns, axis=1)], axis=1)
    wall_ns = step_ns.sum(axis=1) + think_ns * (STEPS_PER_RUN - 1)

    # Row r * 8 is run r's root; rows r * 8 + 1 .. r * 8 + 7 its steps.
    run_of = np.repeat(np.arange(runs), SPANS_PER_RUN)
    position = np.tile(np.arange(SPANS_PER_RUN), runs)  # 0 = root, 1..7 = step index + 1
    is_root = position == 0
    is_step = ~is_root
    step_index = np.maximum(position - 1, 0)
    timestamps = np.where(is_root, start_ns[run_of], step_start_ns[run_of, step_index])
    durations = np.where(is_root, wall_ns[run_of], step_ns[run_of, step_index])

    trace_ids = _hex_strings(rng.integers(0, 256, (runs, 16), dtype=np.uint8)).take(pa.array(run_of))
    span_bytes = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    span_ids = _hex_strings(span_bytes)
    root_rows = np.arange(runs) * SPANS_PER_RUN
    parents = span_ids.take(pa.array(root_rows[run_of]))
    parent_ids = pc.if_else(pa.array(is_root), pa.scalar(""), parents)

    wf = workflow[run_of]
    st = site[run_of]
    last_failed = failed[run_of] & (position == STEPS_PER_RUN)
    run_failed = failed[run_of] & is_root
    step_names = _pick(_STEP_NAMES, step_index)
    workflows = _pick(WORKFLOWS, wf)
    sites = _pick(SITES, st)
    span_type = _pick((s.SPAN_TYPE_RUN, s.SPAN_TYPE_STEP), is_step.astype(np.int64))
    name = pc.if_else(pa.array(is_root), workflows, step_names)
    status_code = _pick(("Unset", "Error"), (last_failed | run_failed).astype(np.int64))
    run_status = _pick((s.RUN_OK, s.RUN_FAILED), failed[run_of].astype(np.int64))
    http_status = _pick(("200", "503"), last_failed.astype(np.int64))
    slot_ts = pa.array((start_ns[run_of] // (60 * _NS)) * 60, pa.timestamp("s", tz="UTC"))
    slots = pc.binary_join_element_wise(pc.strftime(slot_ts, format="%Y-%m-%dT%H:%M:%S"), pa.scalar("+00:00"), "")
    slot_offset = (start_ns[run_of] % (60 * _NS)) / _NS
    dur_s = durations / _NS
    ttfb = dur_s * 0.9
    connect = np.full(n, 0.0004)
    first_step = position == 1

    span_attrs = _map([
        (s.ATTR_SPAN_TYPE, span_type, None),
        (s.ATTR_WORKFLOW, workflows, None),
        (s.ATTR_SITE, sites, None),
        (s.USER_AGENT_SYNTHETIC_TYPE, _pick(("test",), np.zeros(n, np.int64)), None),
        (s.ATTR_RUN_STATUS, run_status, is_root),
        (s.ATTR_RUN_WAITING_S, _floats(waiting_s[run_of]), is_root),
        (s.ATTR_SLOT, slots, is_root),
        (s.ATTR_SLOT_OFFSET_S, _floats(slot_offset), is_root),
        (s.ERROR_TYPE, _pick(("http_5xx",), np.zeros(n, np.int64)), run_failed | last_failed),
        (s.ATTR_STEP, step_names, is_step),
        (s.ATTR_STEP_INDEX, pc.cast(pa.array(step_index), pa.string()), is_step),
        (s.HTTP_REQUEST_METHOD, _pick(("GET",), np.zeros(n, np.int64)), is_step),
        (s.URL_TEMPLATE, _pick(_STEP_TEMPLATES, step_index), is_step),
        (s.SERVER_ADDRESS, _pick(("epr.example",), np.zeros(n, np.int64)), is_step),
        (s.HTTP_RESPONSE_STATUS_CODE, http_status, is_step),
        (s.ATTR_CONNECT_S, _floats(connect), is_step & first_step),
        (s.ATTR_TTFB_S, _floats(ttfb), is_step),
        (s.ATTR_TRANSFER_S, _floats(dur_s - ttfb), is_step),
        (s.ATTR_RESPONSE_BYTES, pc.cast(pa.array(rng.integers(800, 40_000, n)), pa.string()), is_step),
    ], n)
    resource_attrs = _map([
        (s.SERVICE_NAME_ATTR, _pick(("wardwatch-probe",), np.zeros(n, np.int64)), None),
        (s.ATTR_SITE, sites, None),
        (s.ATTR_SITE_TIMEZONE, _pick(("Europe/London",), np.zeros(n, np.int64)), None),
        (s.ATTR_PROBE_ID, _pick(tuple(f"probe-{x}" for x in SITES), st), None),
    ], n)
    empty = _pick(("",), np.zeros(n, np.int64))
    columns = {
        s.TIMESTAMP: pa.array(timestamps, pa.timestamp("ns", tz="UTC")),
        s.TRACE_ID: trace_ids,
        s.SPAN_ID: span_ids,
        s.PARENT_SPAN_ID: parent_ids,
        s.TRACE_STATE: empty,
        s.SPAN_NAME: name,
        s.SPAN_KIND: _pick(("Internal", "Client"), is_step.astype(np.int64)),
        s.SERVICE_NAME: _pick(("wardwatch-probe",), np.zeros(n, np.int64)),
        s.RESOURCE_ATTRIBUTES: resource_attrs,
        s.SCOPE_NAME: _pick(("wardwatch.collector",), np.zeros(n, np.int64)),
        s.SCOPE_VERSION: _pick(("0.1.0",), np.zeros(n, np.int64)),
        s.SPAN_ATTRIBUTES: span_attrs,
        s.DURATION: pa.array(durations, pa.int64()),
        s.STATUS_CODE: status_code,
        s.STATUS_MESSAGE: empty,
        s.EVENTS: pa.array([[]] * 1, SPAN_ARROW_SCHEMA.field(s.EVENTS).type).take(pa.array(np.zeros(n, np.int64))),
        s.WORKFLOW: workflows,
        s.SITE: sites,
        s.STEP: pc.if_else(pa.array(is_step), step_names, pa.scalar(None, pa.string())),
        s.SPAN_TYPE: span_type,
    }
    # The typed columns (store.promote) are derived by write_spans from the maps, as for any writer.
    missing = [f.name for f in WRITTEN_ARROW_SCHEMA if f.name not in columns]
    if missing:
        raise RuntimeError(f"the generator lacks columns {missing}; store.schema changed")
    return pa.table([columns[f.name] for f in WRITTEN_ARROW_SCHEMA], schema=WRITTEN_ARROW_SCHEMA)


def generate_store(path: Path, spans: int, *, days: int = 30, start: dt.datetime = MONTH_START,
                   seed: int = 1, progress: Progress = lambda _m: None) -> GeneratedStore:
    """Write about ``spans`` spans (whole runs of eight spans) into a new store at ``path``, spread
    evenly over ``days`` days from ``start``, one ``write_spans`` call (one segment) per day, or per
    :data:`CHUNK_RUNS` runs of a day that has more.

    Raises:
        ValueError: ``spans`` is smaller than one run per day.
    """
    runs_total = spans // SPANS_PER_RUN
    if runs_total < days:
        raise ValueError(f"{spans} spans make fewer than one run per day over {days} days")
    init_store(path)
    rng = np.random.default_rng(seed)
    began = time.perf_counter()
    start_ns = int(start.timestamp()) * _NS
    per_day = np.full(days, runs_total // days)
    per_day[: runs_total % days] += 1
    for day, count in enumerate(per_day):
        # Runs end before midnight so each day's runs land in its own partition.
        offsets = np.sort(rng.integers(0, (86_400 - 120) * _NS, int(count)))
        day_ns = start_ns + day * 86_400 * _NS
        # A day of a 100M-span store (3.3M spans) built at once peaks at 11 GB: write it in
        # segments of at most CHUNK_RUNS runs (in start order), so memory is bounded by the chunk.
        for first in range(0, int(count), CHUNK_RUNS):
            write_spans(path, span_table(day_ns + offsets[first:first + CHUNK_RUNS], rng))
        if day % 5 == 4 or day == days - 1:
            progress(f"generate: day {day + 1}/{days}, {int(per_day[: day + 1].sum()) * SPANS_PER_RUN:,} spans")
    size = sum(f.stat().st_size for f in (path / "spans").rglob("*.parquet"))
    return GeneratedStore(path=path, runs=runs_total, spans=runs_total * SPANS_PER_RUN, bytes=size,
                          seconds=time.perf_counter() - began, start=start,
                          end=start + dt.timedelta(days=days))
