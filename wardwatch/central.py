"""Wiring the central side: the observatory's receiver, writer, maintenance and dashboard in one process."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

import click

from collector.secretref import SecretResolutionError, resolve_secret
from observatory import Ingest, ObservatoryServer, ObservatoryServerError, RecentSpans, Tokens, create_app
from store import StoreError, init_store
from wardwatch.config import WardwatchConfig
from wardwatch.errors import UserError

__all__ = ["DEFAULT_PORT", "build_observatory", "serve_observatory", "site_token_variable"]

DEFAULT_PORT = 4318  # OTLP/HTTP's registered port


def site_token_variable(site: str) -> str:
    """The environment variable the demo's configuration names for a site's token."""
    return "WARDWATCH_SITE_TOKEN_" + site.upper().replace("-", "_")


def resolve_tokens(config: WardwatchConfig, environ: Mapping[str, str]) -> Tokens:
    """Every configured token, resolved from its ``${env:}``/``${file:}`` reference.

    Raises:
        UserError: a token cannot be resolved (named by its key, never its value), or none is set.
    """
    section = config.observatory
    sites: dict[str, str] = {}
    sources: list[tuple[str, str | None, str]] = []
    try:
        for site, reference in section.tokens.items():
            key = f"observatory.tokens.{site}"
            sites[site] = resolve_secret(reference, environ)
        for i, source in enumerate(section.sources):
            key = f"observatory.sources.{i}.token"
            sources.append((source.service_name, source.target, resolve_secret(source.token, environ)))
        tokens = Tokens(sites, sources)
    except SecretResolutionError as exc:
        raise UserError(f"{key}: {exc}") from exc
    except ValueError as exc:
        raise UserError(f"observatory.tokens: {exc}") from exc
    if not len(tokens):
        raise UserError("observatory.tokens: no site has a token, so no probe could send its spans")
    return tokens


def build_observatory(config: WardwatchConfig, *, host: str, port: int,
                      environ: Mapping[str, str] | None = None) -> tuple[ObservatoryServer, Ingest]:
    """The receiver (not yet started) and its writer (started), over the configured store."""
    environ = os.environ if environ is None else environ
    section = config.observatory
    tokens = resolve_tokens(config, environ)
    try:
        init_store(config.store.path)
    except StoreError as exc:
        raise UserError(str(exc)) from exc
    seen = RecentSpans(section.dedupe_spans, section.dedupe_hours * 3600)
    seen.load(config.store.path)
    ingest = Ingest(config.store.path, seen, max_pending_spans=section.max_pending_spans).start()
    app = create_app(tokens, ingest, max_body_bytes=section.max_body_bytes)
    tls = (section.tls.certificate, section.tls.key) if section.tls else None
    return ObservatoryServer(app, host=host, port=port, tls=tls), ingest


def serve_observatory(config: WardwatchConfig, *, host: str, port: int, dashboard: bool,
                      config_dir: Path | None = None, config_path: Path | None = None) -> None:
    """Receive spans from every site until SIGINT/SIGTERM; run maintenance; serve the dashboard;
    with an ``alerting`` section (and ``config_path``), evaluate alerts beside it in a child."""
    from wardwatch import wiring
    from wardwatch.sidecar import alerts_beside

    wiring.upgrade(config.store.path)
    server, ingest = build_observatory(config, host=host, port=port)
    stop = threading.Event()
    try:
        alerting = config_path if config.alerting is not None else None
        with wiring._stop_on_signals(stop), wiring._maintained(config), alerts_beside(alerting):
            try:
                server.start()
            except ObservatoryServerError as exc:
                raise UserError(str(exc)) from exc
            try:
                click.echo(f"observatory receiving OTLP/HTTP at {server.url}/v1/traces; data in {config.store.path}")
                if dashboard:
                    with wiring._dashboard_server(config, None, None, config_dir) as board:
                        click.echo(f"Wardwatch dashboard at {board.url}  (Ctrl-C stops)")
                        stop.wait()
                else:
                    click.echo("(Ctrl-C stops)")
                    stop.wait()
            finally:
                server.stop()
    finally:
        ingest.stop()
        server.app.state.health.save()
