"""The demo as the deployment in miniature: an observatory, and a probe process per site reporting
to it over OTLP on loopback, with the testbed sending its own server spans as an instrumented EPR.

One process (this one) is the central side: the observatory's receiver and writer, the store's
maintenance and the dashboard, with ``wardwatch alerts`` beside it (a child) and the demo's own
alert receiver (:mod:`wardwatch.demo_receiver`) when the configuration has an ``alerting``
section. The testbed runs here too, sending its server spans to the observatory with its own
token. Each site's probe is a ``wardwatch probe --site S --observatory
URL`` child process with its site's token. Tokens are made up afresh for each demo (unless the
environment gives them), as the testbed's demo secret is.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import click
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

import testbed
from collector.secretref import parse_reference, resolve_secret
from observatory import ObservatoryServerError
from wardwatch import central, demo_receiver, wiring
from wardwatch.config import WardwatchConfig
from wardwatch.errors import UserError
from wardwatch.sidecar import alerts_beside

__all__ = ["demo_tokens", "serve", "wanted"]

STOP_GRACE_S = 45.0  # a probe finishes its runs in flight and sends its spool before it exits


def demo_tokens(config: WardwatchConfig, environ: dict[str, str]) -> None:
    """Give every ``${env:NAME}`` token of the observatory section a fresh value, unless set."""
    references = [*config.observatory.tokens.values(), *(s.token for s in config.observatory.sources)]
    for reference in references:
        parsed = parse_reference(reference)
        if parsed is not None and parsed.kind == "env":
            environ.setdefault(parsed.name, secrets.token_urlsafe(24))


def _probe_processes(config_path: Path, url: str, sites: list[str], environ: Mapping[str, str],
                     log_dir: Path) -> list[subprocess.Popen[bytes]]:
    log_dir.mkdir(parents=True, exist_ok=True)
    children = []
    for site in sites:
        with open(log_dir / f"probe-{site}.log", "ab") as log:
            children.append(subprocess.Popen(
                [sys.executable, "-m", "wardwatch", "probe", "-c", str(config_path), "--site", site,
                 "--observatory", url],
                # their own session: Ctrl-C reaches this process, which stops them in order
                env=dict(environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    return children


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


def serve(config: WardwatchConfig, config_path: Path, scenario: testbed.Scenario | None,
          environ: dict[str, str], config_dir: Path | None) -> None:
    """The observatory, the testbed and one probe process per site, until SIGINT/SIGTERM."""
    demo_tokens(config, environ)
    try:
        server, ingest = central.build_observatory(config, host="127.0.0.1", port=central.DEFAULT_PORT, environ=environ)
        server.start()
    except ObservatoryServerError:  # 4318 is taken (another observatory?): any free port will do
        server, ingest = central.build_observatory(config, host="127.0.0.1", port=0, environ=environ)
        server.start()
    url = server.url
    testbed_sources = [s for s in config.observatory.sources if s.service_name == wiring.TESTBED_SERVICE_NAME]
    exporters = []
    if testbed_sources:
        token = resolve_secret(testbed_sources[0].token, environ)
        exporters = [OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {token}"})]
    testbed_provider = wiring.testbed_tracer_provider(exporters)
    host, port = wiring._testbed_address(config)
    stop = threading.Event()
    children: list[subprocess.Popen[bytes]] = []
    try:
        with wiring._stop_on_signals(stop), wiring._maintained(config), wiring._started(
            testbed.TestbedServer(scenario, host=host, port=port, tracer_provider=testbed_provider)
        ) as epr, wiring._dashboard_server(config, None, None, config_dir) as dashboard, \
                demo_receiver.started(config) as receivers, \
                alerts_beside(config_path if config.alerting is not None else None):
            sites = [s.name for s in config.sites]
            children = _probe_processes(config_path, url, sites, environ, config.store.path / "logs")
            click.echo(f"testbed EPR at {epr.fhir_url}; observatory at {url}; "
                       f"{len(children)} probe processes, one per site ({', '.join(sites)})")
            click.echo(f"data in {config.store.path} (probe logs in {config.store.path / 'logs'})")
            for receiver in receivers:
                click.echo(f"alerts delivered to the demo's receiver {receiver.name} at {receiver.url}")
            click.echo(f"Wardwatch dashboard at {dashboard.url}  (Ctrl-C stops)")
            while not stop.wait(1.0):
                for site, child in zip(sites, children, strict=True):
                    if child.poll() is not None:
                        raise UserError(f"the probe process of site {site} exited ({child.returncode}); "
                                        f"see {config.store.path / 'logs' / f'probe-{site}.log'}")
            click.echo("stopping: the probes finish their runs in flight and send their spools ...", err=True)
            _stop_children(children)
    finally:
        _stop_children(children)
        testbed_provider.shutdown()
        server.stop()
        ingest.stop()
        server.app.state.health.save()


def wanted(config: WardwatchConfig, config_path: Path | None) -> bool:
    """Whether the demo can run as the deployment in miniature: a configuration file the probe
    processes can read, and a token for every site."""
    return config_path is not None and bool(config.sites) and all(s.name in config.observatory.tokens for s in config.sites)

