"""Wiring a probe's store-and-forward: the spool exporter from ``export.observatory``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from collector.secretref import SecretResolutionError, resolve_secret
from collector.spool import Backlog, SiteSpool, SpoolingExporter, spool_file
from wardwatch.config import WardwatchConfig
from wardwatch.errors import UserError

__all__ = ["SPOOL_DIR", "forwarding", "spool_backlog", "spool_directory", "spooling_exporter", "with_observatory"]

SPOOL_DIR = "spool"  # under the data directory unless export.observatory.spool_path says otherwise


def forwarding(config: WardwatchConfig) -> bool:
    """Whether this configuration sends spans to an observatory (instead of the local store)."""
    section = config.export.observatory
    return section is not None and bool(section.endpoint)


def with_observatory(config: WardwatchConfig, endpoint: str) -> WardwatchConfig:
    """The configuration with ``export.observatory.endpoint`` set (``probe --observatory URL``)."""
    from collector.spool import ExportConfig, ObservatoryExportConfig

    section = config.export.observatory or ObservatoryExportConfig()
    export = ExportConfig(observatory=section.model_copy(update={"endpoint": endpoint}))
    return config.model_copy(update={"export": export})


def spool_directory(config: WardwatchConfig) -> Path:
    section = config.export.observatory
    if section is not None and section.spool_path is not None:
        return section.spool_path if section.spool_path.is_absolute() else config.store.path / section.spool_path
    return config.store.path / SPOOL_DIR


def site_tokens(config: WardwatchConfig, sites: list[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Each site's token: ``export.observatory.token``, else the site's ``observatory.tokens`` entry.

    Raises:
        UserError: a site has no token, or its reference cannot be resolved (named, never shown).
    """
    section = config.export.observatory
    tokens = {}
    for site in sites:
        if section is not None and section.token:
            key, reference = "export.observatory.token", section.token
        elif site in config.observatory.tokens:
            key, reference = f"observatory.tokens.{site}", config.observatory.tokens[site]
        else:
            raise UserError(f"export.observatory.token: no token for site {site!r} "
                            f"(set export.observatory.token, or observatory.tokens.{site})")
        try:
            tokens[site] = resolve_secret(reference, environ)
        except SecretResolutionError as exc:
            raise UserError(f"{key}: {exc}") from exc
    return tokens


def spooling_exporter(config: WardwatchConfig, environ: Mapping[str, str], *, site: str | None = None) -> SpoolingExporter:
    """The spool exporter for the selected site (or every configured site)."""
    section = config.export.observatory
    assert section is not None and section.endpoint
    sites = [site] if site is not None else [s.name for s in config.sites]
    return SpoolingExporter(spool_directory(config), section.endpoint, site_tokens(config, sites, environ),
                            drain_sites=sites, max_bytes=section.spool_max_bytes, timeout_s=section.timeout_s,
                            certificate=section.certificate)


def spool_backlog(config: WardwatchConfig, site: str | None = None) -> dict[str, Backlog]:
    """What the spools of the selected sites still hold (sites without a spool file left out)."""
    out = {}
    for name in [site] if site is not None else [s.name for s in config.sites]:
        path = spool_file(spool_directory(config), name)
        if path.exists():
            spool = SiteSpool(path)
            try:
                out[name] = spool.backlog()
            finally:
                spool.close()
    return out


def describe_sent(config: WardwatchConfig, results: list, site: str | None) -> str:
    """After ``probe --once``: sent, or kept in the spool (and where) for the next probe to send."""
    endpoint = config.export.observatory.endpoint if config.export.observatory else None
    waiting = {name: b for name, b in spool_backlog(config, site).items() if b.batches}
    runs = f"{len(results)} run{'' if len(results) == 1 else 's'}"
    if not waiting:
        return f"{runs} sent to the observatory at {endpoint}"
    kept = sum(b.runs for b in waiting.values())
    return (f"{runs} done; the observatory at {endpoint} did not acknowledge everything: {kept} run(s) "
            f"({sum(b.spans for b in waiting.values())} spans) kept in the spool {spool_directory(config)}; "
            "the next probe sends them first")


def probe_state_dir(config: WardwatchConfig, site: str | None) -> Path:
    """Where a forwarding probe keeps its heartbeat: one directory per site selection, so probes
    of different sites sharing a machine (and a configuration) never overwrite each other's."""
    return spool_directory(config) / f"state-{site or 'all-sites'}"
