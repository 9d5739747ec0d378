"""Store-and-forward to the observatory: spans go to a disk spool first, and leave it only once
the observatory has acknowledged them.

The OpenTelemetry SDK has no disk queue: its OTLP/HTTP exporter retries in memory, then drops the
batch. So :class:`SpoolingExporter` is the probe's span exporter: each batch is encoded as the
OTLP ``ExportTraceServiceRequest`` the SDK would send (its own encoder), and committed as one row
of a SQLite database in WAL mode, one database per site (``<spool>/<site>.sqlite``), before the
export returns. A sender thread per site sends the rows oldest first through the SDK's own OTLP/HTTP
client (with the site's bearer token) and deletes a row only after a 2xx. A probe killed at any
moment loses nothing: rows not yet acknowledged are sent again by the next probe process, first,
and the observatory stores a span sent twice once. No pickle: rows are protobuf bytes.

The spool is bounded (``max_bytes``): when full, the oldest batches of runs are dropped first and
batches holding only missed-slot markers last, and the log says so (and how many were dropped).
A body the observatory refuses for good (400, 413, 415) is moved aside to the ``rejected`` table
with the reason, so it cannot block what follows; a refused token (401, 403) keeps every row.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.secretref import parse_reference
from store import schema

# The OTLP client (requests, protobuf) and SQLite are imported when a spool is first used: every
# probe reads ExportConfig, and one that writes its own store never sends (docs/benchmarks.md).
if TYPE_CHECKING:
    import requests
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

__all__ = ["Backlog", "ExportConfig", "ObservatoryExportConfig", "SiteSpool", "SpoolingExporter", "spool_file"]

_log = logging.getLogger(__name__)

GIB = 1024**3
_REFUSED_FOR_GOOD = {400, 413, 415}  # the same body would be refused again: set it aside
_REFUSED_TOKEN = {401, 403}  # the body is fine, the token is not: keep it until someone fixes that
_MAX_BACKOFF_S = 30.0
SEND_MAX_ROWS = 64  # batches sent together in one request when a backlog is waiting
SEND_MAX_BYTES = 4 * 1024 * 1024  # and at most this much (the observatory's limit is 16 MiB)
try:
    PROBE_VERSION = importlib.metadata.version("wardwatch")
except importlib.metadata.PackageNotFoundError:  # run from a source tree without installing
    PROBE_VERSION = "unknown"
_TOKEN_BACKOFF_S = 30.0


class ObservatoryExportConfig(BaseModel):
    """Where a probe sends its spans: the central observatory (``wardwatch observatory``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str | None = Field(
        default=None, description="The observatory's base URL, e.g. https://observatory.trust.nhs.uk:4318 "
        "(`wardwatch probe --observatory URL` gives or overrides it).")
    token: str | None = Field(
        default=None, description="This site's bearer token, as ${env:NAME} or ${file:PATH}; default: the "
        "site's entry in observatory.tokens.")

    @field_validator("token")
    @classmethod
    def _a_reference(cls, value: str | None) -> str | None:
        if value is not None and parse_reference(value) is None:
            raise ValueError("a token is a secret: write ${env:NAME} or ${file:PATH}, never the token itself")
        return value
    spool_path: Path | None = Field(
        default=None, description="Directory of the spool, one SQLite file per site (default: spool/ in "
        "the data directory, store.path).")
    spool_max_bytes: int = Field(default=GIB, gt=0, description="Largest spool per site; when full the oldest runs are dropped first.")
    timeout_s: float = Field(default=10.0, gt=0, description="Seconds one send may take (the SDK exporter's timeout, retries included).")
    certificate: Path | None = Field(default=None, description="CA certificate (PEM) to verify an observatory served over TLS.")


class ExportConfig(BaseModel):
    """Where a probe's spans go besides (or, for the observatory, instead of) the local store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    observatory: ObservatoryExportConfig | None = Field(
        default=None, description="Send spans to the central observatory through a disk spool (not to the local store).")


def spool_file(directory: Path, site: str) -> Path:
    """Where one site's spool lives."""
    return Path(directory) / f"{site or 'no-site'}.sqlite"


@dataclass(frozen=True)
class Backlog:
    """What a spool holds: batches, runs and spans waiting, the oldest one's age, what was dropped."""

    batches: int
    runs: int
    spans: int
    bytes: int
    oldest_age_s: float | None
    dropped_batches: int
    rejected_batches: int


class SiteSpool:
    """One site's spool: a SQLite database in WAL mode, rows committed (fsynced) before returning."""

    def __init__(self, path: Path, max_bytes: int = GIB, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        import sqlite3

        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # committed means on disk, not only in the OS
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS batches (
                id INTEGER PRIMARY KEY AUTOINCREMENT, created_s REAL NOT NULL, spans INTEGER NOT NULL,
                runs INTEGER NOT NULL, missed_only INTEGER NOT NULL, body BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS rejected (
                id INTEGER PRIMARY KEY, created_s REAL NOT NULL, status INTEGER, reason TEXT NOT NULL,
                body BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        """)

    def put(self, body: bytes, *, spans: int, runs: int, missed_only: bool) -> int:
        """Keep one encoded batch; drops the oldest batches first if the spool would exceed its bound.
        Returns how many batches were dropped to make room."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                dropped = self._make_room(len(body))
                self._db.execute("INSERT INTO batches (created_s, spans, runs, missed_only, body) VALUES (?, ?, ?, ?, ?)",
                                 (self._clock(), spans, runs, int(missed_only), body))
                self._count("spooled_spans", spans)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if dropped:
            _log.warning("the spool %s is full (%d bytes): dropped the %d oldest batches to keep the newest",
                         self.path, self.max_bytes, dropped)
        return dropped

    def _make_room(self, incoming: int) -> int:
        (used,) = self._db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM batches").fetchone()
        dropped = 0
        # runs first, oldest first; batches holding only missed-slot markers last
        victims = self._db.execute("SELECT id, LENGTH(body) FROM batches ORDER BY missed_only, id").fetchall()
        for row_id, size in victims:
            if used + incoming <= self.max_bytes:
                break
            self._db.execute("DELETE FROM batches WHERE id = ?", (row_id,))
            used -= size
            dropped += 1
        self._count("dropped", dropped)
        return dropped

    def _count(self, name: str, n: int) -> None:
        """Running totals kept with the rows (same transaction): what was spooled, sent, dropped."""
        if n:
            self._db.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
                             (name, n, n))

    def oldest(self) -> tuple[int, bytes] | None:
        rows = self.oldest_batches(max_rows=1)
        return rows[0] if rows else None

    def oldest_batches(self, *, max_rows: int = SEND_MAX_ROWS, max_bytes: int = SEND_MAX_BYTES) -> list[tuple[int, bytes]]:
        """The oldest batches, as many as fit in ``max_bytes`` (at least one)."""
        with self._lock:
            rows = self._db.execute("SELECT id, body FROM batches ORDER BY id LIMIT ?", (max_rows,)).fetchall()
        out, size = [], 0
        for row_id, body in rows:
            if out and size + len(body) > max_bytes:
                break
            out.append((row_id, body))
            size += len(body)
        return out

    def delete(self, *row_ids: int) -> None:
        """Forget batches the observatory acknowledged."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for row_id in row_ids:
                spans = self._db.execute("SELECT spans FROM batches WHERE id = ?", (row_id,)).fetchone()
                self._db.execute("DELETE FROM batches WHERE id = ?", (row_id,))
                self._count("sent_spans", spans[0] if spans else 0)
            self._db.execute("COMMIT")

    def counters(self) -> dict[str, int]:
        """Totals over the spool's life: ``spooled_spans``, ``sent_spans``, ``dropped`` (batches)."""
        with self._lock:
            return dict(self._db.execute("SELECT name, value FROM counters").fetchall())

    def reject(self, row_id: int, status: int | None, reason: str) -> None:
        """Set a batch aside (kept for inspection, never sent again)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO rejected SELECT id, created_s, ?, ?, body FROM batches WHERE id = ?",
                             (status, reason, row_id))
            self._db.execute("DELETE FROM batches WHERE id = ?", (row_id,))
            self._db.execute("COMMIT")

    def backlog(self) -> Backlog:
        with self._lock:
            batches, runs, spans, size, oldest = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(runs), 0), COALESCE(SUM(spans), 0), COALESCE(SUM(LENGTH(body)), 0), "
                "MIN(created_s) FROM batches").fetchone()
            dropped = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
            (rejected,) = self._db.execute("SELECT COUNT(*) FROM rejected").fetchone()
        return Backlog(batches, runs, spans, size, None if oldest is None else max(0.0, self._clock() - oldest),
                       dropped[0] if dropped else 0, rejected)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Sender:
    """Sends one site's spool, oldest first, through the SDK's OTLP/HTTP client."""

    def __init__(self, site: str, spool: SiteSpool, exporter: OTLPSpanExporter) -> None:
        self.site = site
        self.spool = spool
        self.exporter = exporter
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.draining = False
        self.failed_while_draining = threading.Event()
        self.sent_batches = 0
        self.thread = threading.Thread(target=self._run, name=f"spool-sender-{site}", daemon=True)

    def _health_headers(self) -> dict[str, str]:
        """What the observatory shows as this site's health: the spool's backlog (this batch
        included), when this send left by the probe's clock (against the observatory's: the
        offset), and the probe's version."""
        backlog = self.spool.backlog()
        return {
            schema.SPOOL_HEADER: f"batches={backlog.batches}; runs={backlog.runs}; "
                          f"oldest_age_s={backlog.oldest_age_s or 0:.0f}; dropped={backlog.dropped_batches}",
            schema.SENT_AT_HEADER: f"{time.time():.3f}",
            schema.PROBE_VERSION_HEADER: PROBE_VERSION,
        }

    def _run(self) -> None:
        backoff = 1.0
        one_at_a_time = False  # after a refusal, until the refused batch is found
        while not self.stop.is_set():
            rows = self.spool.oldest_batches(max_rows=1 if one_at_a_time else SEND_MAX_ROWS)
            if not rows:
                if self.draining:
                    return
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            # Serialised requests concatenated are one request holding all their spans (protobuf
            # merges repeated fields), so a backlog leaves in few requests, not one per batch.
            row_ids = [row_id for row_id, _ in rows]
            ok, status, reason = _send(self.exporter, b"".join(body for _, body in rows), self._health_headers())
            if ok:
                self.spool.delete(*row_ids)
                self.sent_batches += len(row_ids)
                one_at_a_time = False
                if backoff > 1.0:
                    _log.warning("the observatory answers again for site %s; sending its spool", self.site)
                backoff = 1.0
                continue
            if status in _REFUSED_FOR_GOOD:
                if len(row_ids) > 1:  # which batch? send them one at a time until it is found
                    one_at_a_time = True
                    continue
                _log.error("the observatory refused a batch of site %s for good (%s %s); set aside in %s",
                           self.site, status, reason, self.spool.path)
                self.spool.reject(row_ids[0], status, f"{status} {reason or ''}".strip())
                continue
            if self.draining:
                self.failed_while_draining.set()
                return
            if status in _REFUSED_TOKEN:
                _log.error("the observatory refused site %s's token (%s); its spans stay in the spool %s",
                           self.site, status, self.spool.path)
                self.stop.wait(_TOKEN_BACKOFF_S)
                continue
            # said once per outage (then quietly, up to every 30 s): an hour down is one line, not 120
            _log.log(logging.WARNING if backoff == 1.0 else logging.DEBUG,
                     "the observatory is unreachable for site %s (%s); spans stay in the spool %s and are sent "
                     "when it answers", self.site, status or reason or "no answer", self.spool.path)
            self.stop.wait(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)


def _certificate_session() -> requests.Session:
    """A session whose own CA file wins: requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``
    override ``session.verify`` (psf/requests#3829), so a configured certificate was ignored
    wherever those variables are set; proxies and the rest still come from the environment."""
    import requests

    class CertificateSession(requests.Session):
        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                       cert: Any) -> dict[str, Any]:
            settings: dict[str, Any] = super().merge_environment_settings(url, proxies, stream, verify, cert)
            settings["verify"] = self.verify
            return settings

    return CertificateSession()


def _send(exporter: OTLPSpanExporter, body: bytes, headers: Mapping[str, str]) -> tuple[bool, int | None, str | None]:
    """One encoded request through the SDK exporter's own HTTP client (retries, backoff, TLS,
    compression, Retry-After as the SDK does them). Its public ``export`` takes live spans only;
    the client is pinned with the SDK version in the lock, and the tests send through it."""
    client = exporter._client  # noqa: SLF001 - see the docstring
    client._headers.update(headers)  # noqa: SLF001 - the headers of this send (one sender per client)
    result = client.export(body)
    return result.success, result.status_code, result.reason or (str(result.error) if result.error else None)


class SpoolingExporter(SpanExporter):
    """The probe's exporter when an observatory is configured: spool first, send in the background.

    Args:
        directory: the spool directory (one SQLite file per site).
        endpoint: the observatory's base URL (``/v1/traces`` is appended).
        tokens: site -> bearer token (resolved values).
        drain_sites: sites whose spools are sent from the start (what an earlier probe left);
            other sites' spools are opened when their first span arrives.
        max_bytes: bound of each site's spool.
        timeout_s: the SDK exporter's timeout per send.
        certificate: CA file for an observatory served over TLS.
        drain_s: at shutdown, how long to keep sending while the observatory answers.
    """

    def __init__(self, directory: Path, endpoint: str, tokens: Mapping[str, str], *,
                 drain_sites: Iterable[str] = (), max_bytes: int = GIB, timeout_s: float = 10.0,
                 certificate: Path | None = None, drain_s: float = 30.0) -> None:
        self.directory = Path(directory)
        self.endpoint = endpoint.rstrip("/") + "/v1/traces"
        self._tokens = dict(tokens)
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._certificate = certificate
        self._drain_s = drain_s
        self._lock = threading.Lock()
        self._senders: dict[str, _Sender] = {}
        self._shut_down = False
        for site in drain_sites:
            self._sender(site)

    def _sender(self, site: str) -> _Sender:
        with self._lock:
            sender = self._senders.get(site)
            if sender is None:
                token = self._tokens.get(site)
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporter = OTLPSpanExporter(
                    endpoint=self.endpoint, headers=headers, timeout=self._timeout_s,
                    certificate_file=str(self._certificate) if self._certificate else None,
                    session=_certificate_session() if self._certificate else None)
                spool = SiteSpool(spool_file(self.directory, site), self._max_bytes)
                sender = self._senders[site] = _Sender(site, spool, exporter)
                sender.thread.start()
            return sender

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Commit ``spans`` to the spool (per site); the senders take them from there."""
        if self._shut_down:
            return SpanExportResult.FAILURE
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        by_site: dict[str, list[ReadableSpan]] = defaultdict(list)
        for span in spans:
            site = (span.resource.attributes.get(schema.ATTR_SITE) if span.resource else None) or ""
            by_site[str(site)].append(span)
        try:
            for site, group in by_site.items():
                types = [(span.attributes or {}).get(schema.ATTR_SPAN_TYPE) for span in group]
                sender = self._sender(site)
                sender.spool.put(encode_spans(group).SerializeToString(), spans=len(group),
                                 runs=types.count(schema.SPAN_TYPE_RUN),
                                 missed_only=all(t == schema.SPAN_TYPE_MISSED_SLOT for t in types))
                sender.wake.set()
        except Exception:  # the export boundary: telemetry must never crash the probe
            _log.exception("could not write %d spans to the spool in %s", len(spans), self.directory)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def backlog(self) -> dict[str, Backlog]:
        with self._lock:
            senders = dict(self._senders)
        return {site: sender.spool.backlog() for site, sender in senders.items()}

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Every exported span is already committed to the spool: nothing to flush."""
        return True

    def shutdown(self) -> None:
        """Keep sending while the observatory answers (at most ``drain_s``), then stop; what is
        left stays in the spool for the next probe process."""
        if self._shut_down:
            return
        self._shut_down = True
        with self._lock:
            senders = list(self._senders.values())
        deadline = time.monotonic() + self._drain_s
        for sender in senders:
            sender.draining = True
            sender.wake.set()
        for sender in senders:
            sender.thread.join(max(0.0, deadline - time.monotonic()))
        for sender in senders:
            sender.stop.set()
            sender.exporter.shutdown()  # ends a retry's wait in the SDK client
        for sender in senders:
            sender.thread.join(5)
            if not sender.thread.is_alive():
                sender.spool.close()
