"""The one place that wires the packages together: exporters, probes, testbed, dashboard, demo."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import sys
import threading
import time
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from analysis import config as analysis_config
from collector import Probe, RunResult
from collector.history import HistoryExportError
from store import Maintenance, ParquetSpanExporter, StoreError, import_otlp_jsonl, import_server_timings
from store.writer import last_slots
from wardwatch.config import WardwatchConfig
from wardwatch.errors import UserError
from wardwatch.forgo import forgo

if TYPE_CHECKING:  # imported where used: a probe process needs neither Dash nor the history builder
    import testbed
    from dashboard import DashboardContext, DashboardServer
    from wardwatch import simulate

__all__ = [
    "DEMO_CONFIG",
    "add_change",
    "build_exporters",
    "build_probe",
    "dashboard_context",
    "describe_results",
    "probe_forever",
    "import_files",
    "probe_once",
    "report",
    "run_demo",
    "serve_dashboard",
    "serve_testbed",
]

_log = logging.getLogger(__name__)

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "testbed.yaml"
TESTBED_SERVICE_NAME = "wardwatch-testbed"
# The testbed's own demo credential (not a secret: it opens only the simulated EPR).
TESTBED_SECRET_VARIABLE = "WARDWATCH_TESTBED_CLIENT_SECRET"
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def build_exporters(config: WardwatchConfig, environ: Mapping[str, str], *, site: str | None = None) -> list[SpanExporter]:
    """The Parquet store (or, with ``export.observatory``, the spool to the observatory instead);
    OTLP/HTTP as well when the standard OTEL variables name an endpoint."""
    from wardwatch import forwarding

    exporters: list[SpanExporter] = (
        [forwarding.spooling_exporter(config, environ, site=site)] if forwarding.forwarding(config)
        else [ParquetSpanExporter(config.store.path)]
    )
    if any(environ.get(name) for name in OTLP_ENDPOINT_VARIABLES):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())
    return exporters


def build_probe(
    config: WardwatchConfig, *, environ: Mapping[str, str] | None = None, exporters: Sequence[SpanExporter] | None = None,
    site: str | None = None,
) -> Probe:
    """A probe over the configured targets, sites, patients and workflows."""
    environ = os.environ if environ is None else environ
    return Probe(
        config.targets,
        config.sites,
        config.patients,
        config.workflows,
        build_exporters(config, environ, site=site) if exporters is None else exporters,
        environ=environ,
        probe_id=socket.gethostname(),
        metric_readers=build_metric_readers(environ),
        # Histogram buckets include every threshold a workflow is judged against.
        thresholds_s=sorted({o.threshold_s for o in config.objectives} | {s.threshold_s for s in config.slas if s.threshold_s}),
        # Where the probe notes its last heartbeat, so a restart records the slots missed while down.
        state_dir=_probe_state_dir(config, site),
        # A browser workflow's screenshot on failure (opt-in) stays in the data directory.
        screenshots_dir=config.store.path / "screenshots",
        # ... from the last slot the store holds, not only the state file's (kill -9 loses spans);
        # a probe sending to an observatory writes no store here, so its state file alone.
        recorded_slots=None if _forwards(config) else lambda: {
            f"{workflow}@{site}": slot.timestamp() for (workflow, site), slot in last_slots(config.store.path).items()
        },
    )


def _forwards(config: WardwatchConfig) -> bool:
    from wardwatch import forwarding

    return forwarding.forwarding(config)


def _probe_state_dir(config: WardwatchConfig, site: str | None) -> Path:
    """The data directory; beside its spool for a probe sending to the observatory (whose store
    that data directory may be, shared with other sites' probes on the same machine)."""
    from wardwatch import forwarding

    return forwarding.probe_state_dir(config, site) if forwarding.forwarding(config) else config.store.path


def build_metric_readers(environ: Mapping[str, str]) -> list[MetricReader]:
    """OTLP/HTTP metrics when the standard OTEL variables name an endpoint; none otherwise."""
    if not any(environ.get(name) for name in (*OTLP_ENDPOINT_VARIABLES, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")):
        return []
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return [PeriodicExportingMetricReader(OTLPMetricExporter())]


def _selected_browser_workflows(config: WardwatchConfig, site: str | None, workflow: str | None) -> list[str]:
    return [w.name for w in config.workflows if w.kind == "browser" and (workflow is None or w.name == workflow)
            and (site is None or not w.sites or site in w.sites)]


def check_browser(config: WardwatchConfig, environ: Mapping[str, str], *, site: str | None = None,
                  workflow: str | None = None) -> WardwatchConfig:
    """The configuration to probe with, given whether Chromium is installed.

    A browser workflow chosen by name (``--workflow``) without Chromium is refused in one line
    saying what to install. Otherwise browser workflows are left out, saying so in one line, so
    the HTTP workflows (and the demo) still run on a machine without a browser.
    """
    if not _selected_browser_workflows(config, site, workflow):
        return config
    from collector.browser import BrowserMissingError, find_chromium

    try:
        find_chromium(environ)
    except BrowserMissingError as exc:
        if workflow is not None:
            raise UserError(str(exc)) from exc
        click.echo(f"browser workflows left out: {exc}", err=True)
        return config.model_copy(update={"workflows": [w for w in config.workflows if w.kind != "browser"]})
    return config


def probe_once(
    config: WardwatchConfig, *, site: str | None = None, workflow: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[RunResult]:
    """Run each selected workflow once at each selected site; every span is stored before returning."""
    config = check_browser(config, os.environ if environ is None else environ, site=site, workflow=workflow)
    probe = build_probe(config, environ=environ, site=site)
    try:
        return probe.run_once(site=site, workflow=workflow)
    finally:
        probe.shutdown()


def forgo_pandas() -> None:
    """Make pandas and numpy unimportable in this process, unless something has loaded them already.

    A probe process never uses them, but pyarrow imports numpy (17 MB) when it is itself imported
    and pandas (34 MB) on its first conversion of Python objects, only to ask whether what it is
    given is theirs; told they are absent, pyarrow goes on without them (``wardwatch probe`` on its
    cadence forgoes both before it imports pyarrow). Call it only in a process that is a probe and
    nothing else.
    """
    forgo("pandas", "numpy")


def probe_forever(config: WardwatchConfig, *, site: str | None = None, workflow: str | None = None,
                  config_path: Path | None = None) -> None:
    """Probe on the configured cadence until SIGINT or SIGTERM; then flush every span.

    This is the process of a probe alone, so pandas is never loaded in it (:func:`forgo_pandas`).
    With an ``alerting`` section (and ``config_path``), alerts are evaluated beside it in a child.
    """
    from wardwatch.sidecar import alerts_beside

    forgo_pandas()
    config = check_browser(config, os.environ, site=site, workflow=workflow)
    probe = build_probe(config, site=site)
    stop = threading.Event()
    from wardwatch.forwarding import forwarding

    # A probe sending to the observatory writes no store here: maintenance is the observatory's,
    # and so are its alerts; a probe alone evaluates them beside itself.
    sending = forwarding(config)
    alerting = config_path if config.alerting is not None and not sending else None
    with _stop_on_signals(stop), (nullcontext() if sending else _maintained(config, derive=False)), \
            alerts_beside(alerting):
        click.echo(f"probing {len(probe.jobs(site, workflow))} workflow x site pairs; Ctrl-C stops", err=True)
        try:
            probe.run_forever(stop, site=site, workflow=workflow)
        finally:
            probe.shutdown()


def describe_results(results: Sequence[RunResult]) -> Iterator[str]:
    """One line per run, for the command line."""
    for result in results:
        line = f"{result.workflow} @ {result.site}: {result.status}, waited {result.waiting_s:.3f} s"
        if result.error_type:
            line += f" ({result.error_type}: {result.message})"
        yield line


def testbed_tracer_provider(exporters: Sequence[SpanExporter]) -> TracerProvider:
    """Where the testbed's server spans go: the same store, under the testbed's service name."""
    provider = TracerProvider(resource=Resource.create({"service.name": TESTBED_SERVICE_NAME}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def serve_testbed(host: str, port: int, scenario_path: Path | None, store_path: Path | None,
                  *, allowed_hosts: Sequence[str] = (), observatory: tuple[str, str] | None = None) -> None:
    """Serve the testbed until interrupted, optionally storing its server spans, or sending them to
    an observatory (``(url, token)``) as an instrumented EPR would."""
    import testbed  # uvicorn and Starlette: only where the testbed is served, never in a probe

    exporters: list[SpanExporter] = [ParquetSpanExporter(store_path)] if store_path else []
    if observatory is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url, token = observatory
        exporters.append(OTLPSpanExporter(endpoint=url.rstrip("/") + "/v1/traces", headers={"Authorization": f"Bearer {token}"}))
    provider = testbed_tracer_provider(exporters) if exporters else TracerProvider()
    click.echo(f"testbed EPR at http://{host}:{port}/fhir (Ctrl-C stops)", err=True)
    if exporters and threading.current_thread() is threading.main_thread():
        # SIGTERM (how the demo stops it) ends it as Ctrl-C does: uvicorn shuts down, then raises
        # the signal again, and the server spans still batched are flushed below, not lost.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        testbed.serve(host, port, scenario_path, tracer_provider=provider, allowed_hosts=allowed_hosts)
    except testbed.ScenarioError as exc:
        raise UserError(str(exc)) from exc
    finally:
        provider.shutdown()


def serve_dashboard(
    config: WardwatchConfig, *, host: str | None = None, port: int | None = None, config_dir: Path | None = None
) -> None:
    """Serve the dashboard until interrupted."""
    server = _dashboard_server(config, host, port, config_dir)
    stop = threading.Event()
    with _stop_on_signals(stop), server:
        click.echo(f"Wardwatch dashboard at {server.url} (Ctrl-C stops)")
        stop.wait()


def prepare_history(config: WardwatchConfig, *, days: int, fresh: bool) -> simulate.HistorySummary | None:
    """The demo's simulated history: reused when present, built (with a progress bar) when not."""
    from wardwatch import simulate

    if days <= 0:
        return None
    path = config.store.path
    if fresh:
        simulate.remove_history(path)
    elif (summary := simulate.read_history_summary(path)) is not None:
        click.echo(f"reusing {summary.days} days of simulated history in {path} (--fresh rebuilds it)")
        return summary
    label = f"simulating {days} days of history"
    with _progress(label, days + 1) as advance:
        try:
            summary = simulate.simulate_history(config, days=days, progress=advance)
        except HistoryExportError as exc:
            raise UserError(f"could not write the simulated history to {path}: {exc}") from exc
    click.echo(
        f"simulated {summary.runs:,} runs ({summary.spans:,} spans) from the testbed's latency model "
        f"in {summary.elapsed_s:.0f} s; they are labelled simulated wherever they are shown"
    )
    return summary


@contextmanager
def _progress(label: str, length: int, stream: typing.TextIO | None = None) -> Iterator[Callable[[int, int], None]]:
    """``advance(done, total)`` for a long job: a progress bar on a terminal, else a line per step
    (a log file or a CI job shows progress too; click's bar would print only its label there)."""
    stream = click.get_text_stream("stdout") if stream is None else stream
    if stream.isatty():
        with click.progressbar(length=length, label=label, show_eta=True, file=stream) as bar:

            def advance_bar(done: int, total: int) -> None:
                bar.length = total  # e.g. the UTC dates a history touches: usually days + 1
                bar.update(done - bar.pos)

            yield advance_bar
        return
    started = time.monotonic()
    click.echo(f"{label} ...", file=stream)

    def advance_lines(done: int, total: int) -> None:
        if done > 0:
            click.echo(f"{label}: {done} of {total} done ({time.monotonic() - started:.0f} s)", file=stream)

    yield advance_lines


def _history_notices(config: WardwatchConfig, summary: simulate.HistorySummary, config_dir: Path | None) -> None:
    """The status page's notices from the history's last weekday, once per history (none delivered)."""
    from wardwatch import alerts

    started = time.monotonic()
    written = alerts.history_notices(config, summary.start, summary.end, config_dir)
    if written is not None:
        click.echo(f"{written} notices the alerts would have written on the history's last weekday, for the "
                   f"status page (marked as from the simulated history; none delivered) in "
                   f"{time.monotonic() - started:.0f} s")


def run_demo(
    config: WardwatchConfig,
    *,
    days: int = 28,
    fresh: bool = False,
    environ: Mapping[str, str] | None = None,
    config_dir: Path | None = None,
    config_path: Path | None = None,
) -> None:
    """Simulated history, then testbed + probes from the configured sites + dashboard, until Ctrl-C.

    With ``config_path`` and a token for every site (``observatory.tokens``), the probes are one
    process per site reporting to an observatory in this process (:mod:`wardwatch.demo_sites`)."""
    import testbed

    environ = dict(os.environ if environ is None else environ)
    environ.setdefault(TESTBED_SECRET_VARIABLE, testbed.DEFAULT_CLIENT_SECRET)
    host, port = _testbed_address(config)
    try:
        upgrade(config.store.path)
        summary = prepare_history(config, days=days, fresh=fresh)
        exporters = build_exporters(config, environ)
    except StoreError as exc:
        raise UserError(str(exc)) from exc
    # The live testbed tells the same stories as the history: its change and outage fall in the same window.
    scenario = None
    if summary is not None:
        from wardwatch import simulate

        scenario = simulate.scenario_in_window(testbed.load_scenario(), summary.start, summary.end)
        # Where the history put the release, as data every reader sees (again for a history
        # built before changes were recorded).
        simulate.record_moved_changes(config, scenario)
        if config.alerting is not None:  # ~20 s of replay: off the start, the notices appear when done
            threading.Thread(target=_history_notices, args=(config, summary, config_dir),
                             name="history-notices", daemon=True).start()
    from wardwatch import demo_sites

    if demo_sites.wanted(config, config_path):
        demo_sites.serve(config, config_path, scenario, environ, config_dir)
        return
    testbed_provider = testbed_tracer_provider(exporters)
    config = check_browser(config, environ)
    probe = build_probe(config, environ=environ, exporters=exporters)
    stop = threading.Event()
    try:
        with _stop_on_signals(stop), _maintained(config), _started(
            testbed.TestbedServer(scenario, host=host, port=port, tracer_provider=testbed_provider)
        ) as epr:
            from wardwatch import demo_receiver
            from wardwatch.sidecar import alerts_beside

            dashboard = _dashboard_server(config, None, None, config_dir)
            with dashboard, demo_receiver.started(config) as receivers, alerts_beside(
                    config_path if config.alerting is not None else None):
                prober = threading.Thread(target=probe.run_forever, args=(stop,), name="probes", daemon=True)
                prober.start()
                jobs = probe.jobs()
                click.echo(f"testbed EPR at {epr.fhir_url}; {len(jobs)} workflow x site probes on their cadence")
                click.echo(f"data in {config.store.path}")
                for receiver in receivers:
                    click.echo(f"alerts delivered to the demo's receiver {receiver.name} at {receiver.url}")
                click.echo(f"Wardwatch dashboard at {dashboard.url}  (Ctrl-C stops)")
                stop.wait()
                click.echo("stopping: finishing runs in flight and flushing spans ...", err=True)
                prober.join(timeout=30)
    finally:
        probe.shutdown()
        testbed_provider.shutdown()


def upgrade(store_path: Path) -> int:
    """Upgrade the store at ``store_path`` to this Wardwatch's schema in place, saying so; segments rewritten.

    Nothing to do (0) for a store of this version or no store yet.

    Raises:
        UserError: the store cannot be upgraded.
    """
    from store import read_schema_version, schema, upgrade_store
    from store.layout import MARKER_FILE

    try:
        if not (Path(store_path) / MARKER_FILE).exists() or read_schema_version(store_path) == schema.SCHEMA_VERSION:
            return 0
        click.echo(f"upgrading the store at {store_path} to schema version {schema.SCHEMA_VERSION} ...", err=True)
        rewritten = upgrade_store(store_path)
    except StoreError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"upgraded: {rewritten} segment(s) rewritten", err=True)
    return rewritten


def upgrade_with_config(config: WardwatchConfig) -> int:
    """:func:`upgrade`, then the query layer's pre-aggregates of every closed bucket not built yet,
    with a progress bar; the days built."""
    from analysis.query import preagg

    path = config.store.path
    upgrade(path)
    partitions = {segment.parent for segment in preagg.live_segments(path)}
    if not partitions:
        click.echo(f"{path}: no spans yet, nothing to pre-aggregate", err=True)
        return 0
    with _progress("building the pre-aggregates", len(partitions), stream=sys.stdout) as advance:
        built = preagg.refresh(path, query_definitions(config), progress=advance)
    click.echo(f"pre-aggregates: {built} day(s) built" if built else "pre-aggregates: already up to date", err=True)
    return built


def report(config: WardwatchConfig, *, month: str, output_format: str, base_dir: Path) -> str:
    """The month's SLA-versus-experience report, rendered as Markdown, HTML, JSON or CSV."""
    import analysis
    from analysis.findings import FindingInputs
    from analysis.report import month_report

    try:
        inputs = FindingInputs.from_config(config)
        with analysis.open_store(config.store.path, calendar=inputs.calendar()) as store:
            built = month_report(store, inputs, month, base_dir=base_dir)
    except (StoreError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    return analysis.render(built, output_format)


def add_change(config: WardwatchConfig, change: analysis_config.ChangeEventConfig) -> str:
    """Record ``change`` in the store's data directory, where every reader finds it; what was done."""
    from analysis.changelog import ChangeLogError, record_change

    unknown = sorted(set(change.workflows) - {w.name for w in config.workflows})
    if unknown:
        known = ", ".join(w.name for w in config.workflows) or "none configured"
        raise UserError(f"--workflow: no workflow named {unknown[0]!r} in the configuration (known: {known})")
    try:
        replaced = record_change(config.store.path, change)
    except (ChangeLogError, OSError) as exc:
        raise UserError(str(exc)) from exc
    when = f"{change.at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    if replaced is not None and replaced.at != change.at:
        return f"moved {change.title!r} from {replaced.at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC to {when}"
    return f"recorded {change.title!r} at {when}"


def _effective_changes(config: WardwatchConfig) -> list[analysis_config.ChangeEventConfig]:
    from analysis.changelog import ChangeLogError, effective_changes

    try:
        return effective_changes(config.changes, config.store.path)
    except ChangeLogError as exc:
        raise UserError(str(exc)) from exc


def import_files(config: WardwatchConfig, paths: Sequence[Path], *, duration_unit: str, service_name: str,
                 assume_timezone: str | None) -> Iterator[tuple[str, bool]]:
    """Import each file into the store: OTLP JSON lines, or the EPR's request timings (CSV/Parquet).

    Yields ``(text, skipped)``: a summary line per file, and one per skipped input line
    (``file:line: reason``, ``skipped`` true).
    """
    try:
        zone = ZoneInfo(assume_timezone) if assume_timezone else None
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UserError(f"--assume-timezone: unknown IANA time zone {assume_timezone!r}") from exc
    for path in paths:
        suffixes = "".join(path.suffixes[-2:]).lower()
        try:
            if suffixes.endswith((".csv", ".parquet")):
                result = import_server_timings(path, config.store.path, duration_unit=duration_unit,
                                               service_name=service_name, assume_timezone=zone)
            elif suffixes.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz", ".gz")):
                result = import_otlp_jsonl(path, config.store.path)
            else:
                raise UserError(f"{path}: not a file Wardwatch imports (.jsonl, .json, .gz, .csv or .parquet)")
        except (OSError, ValueError, StoreError) as exc:
            raise UserError(f"{path}: {exc}") from exc
        skipped = f", {len(result.issues)} lines skipped" if result.issues else ""
        already = f", {result.already_stored} already stored" if result.already_stored else ""
        yield f"{path}: {result.spans} spans imported{already}{skipped}", False
        for issue in result.issues:
            yield str(issue), True


def _testbed_address(config: WardwatchConfig) -> tuple[str, int]:
    """The testbed listens where the demo config's targets expect it (127.0.0.1:8765 by default)."""
    import httpx

    for target in config.targets.values():
        url = httpx.URL(str(target.base_url))
        if url.host in ("127.0.0.1", "localhost"):
            return "127.0.0.1", url.port or 80
    return "127.0.0.1", 8765


def dashboard_context(config: WardwatchConfig, config_dir: Path | None = None) -> DashboardContext:
    """What the dashboard needs from the config: sites, workflows with their thresholds, periods."""
    from dashboard.context import DEFAULT_THRESHOLD_S, DashboardContext, SiteInfo, WorkflowInfo

    thresholds: dict[str, tuple[float, str]] = {}
    for objective in config.objectives:
        thresholds.setdefault(objective.workflow, (objective.threshold_s, f"objective '{objective.name}'"))
    workflows = tuple(
        WorkflowInfo(w.name, w.description or "", *thresholds.get(w.name, (DEFAULT_THRESHOLD_S, "default")))
        for w in config.workflows
    )
    return DashboardContext(
        data_dir=config.store.path,
        timezone=config.dashboard.timezone,
        refresh_interval_s=config.dashboard.refresh_interval_s,
        recent_runs=config.dashboard.recent_runs,
        sites=tuple(SiteInfo(s.name, s.title or s.name, s.timezone) for s in config.sites),
        workflows=workflows,
        periods=tuple(config.periods),
        # The recorded changes as they are now; the report page reads them again when it builds.
        changes=tuple(_effective_changes(config)),
        slas=tuple(config.slas),
        objectives=tuple(config.objectives),
        task_volumes=tuple(config.task_volumes),
        config_dir=config_dir,
    )


def _dashboard_server(
    config: WardwatchConfig, host: str | None, port: int | None, config_dir: Path | None
) -> DashboardServer:
    from dashboard import DashboardServer, create_app

    context = dashboard_context(config, config_dir)
    host = host or config.dashboard.host
    port = config.dashboard.port if port is None else port
    try:
        return DashboardServer(create_app(context), host=host, port=port,
                               allowed_hosts=config.dashboard.allowed_hosts)
    except OSError as exc:
        raise UserError(
            f"cannot serve the dashboard on {host}:{port}: {exc.strerror} (is another one running? try --port)"
        ) from exc


def query_definitions(config: WardwatchConfig) -> Definitions:
    """What the query layer's pre-aggregates are made for (each workflow's T), as the dashboard
    reads them."""
    from dashboard.data import definitions

    return definitions(dashboard_context(config))


def _pre_aggregate(config: WardwatchConfig) -> Callable[[Path], object]:
    """The analysis' pre-aggregates, built by the store's maintenance as buckets close: the store
    calls what the composition root registers and knows nothing of analysis."""
    from analysis.query import preagg

    defs = query_definitions(config)
    return lambda path: preagg.refresh(path, defs)


@contextmanager
def _maintained(config: WardwatchConfig, *, derive: bool = True) -> Iterator[None]:
    """Compaction and retention in the background, in the one process that writes the store, and
    the query layer's pre-aggregates (not in a lone probe's process, which never loads pandas or
    DuckDB: the dashboard serving its store builds them)."""
    maintenance = Maintenance.from_config(config.store, after_pass=[_pre_aggregate(config)] if derive else [])
    maintenance.start()
    try:
        yield
    finally:
        maintenance.stop()


@contextmanager
def _started(server: testbed.TestbedServer) -> Iterator[testbed.TestbedServer]:
    import testbed

    try:
        server.start()
    except testbed.TestbedServerError as exc:
        raise UserError(f"cannot start the testbed EPR: {exc}") from exc
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT/SIGTERM instead of raising, so everything can shut down in order.

    The handler only releases a lock, and a watcher thread sets ``stop``. A handler runs in the
    main thread between two bytecodes, perhaps while that thread holds the event's own lock
    (waiting on the event, or inside the handler of an earlier signal), and that lock is not
    re-entrant: setting the event there deadlocked the demo when two SIGTERMs came together.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signalled = threading.Lock()
    signalled.acquire()
    leaving = False

    def handle(_signum: int, _frame: object) -> None:
        try:
            signalled.release()
        except RuntimeError:  # an earlier signal released it already
            pass

    def watch() -> None:
        signalled.acquire()
        if not leaving:
            stop.set()

    watcher = threading.Thread(target=watch, name="signal-watcher", daemon=True)
    watcher.start()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        leaving = True
        handle(0, None)  # let the watcher go
        watcher.join(timeout=1)
