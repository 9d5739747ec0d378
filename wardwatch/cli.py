"""The `wardwatch` command: thin wrappers over library functions.

A user's mistake gives one clear line per problem and exit code 2, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from store.config import use_duckdb_settings
from wardwatch.config import ConfigError, WardwatchConfig, load_config, locate_problems
from wardwatch.errors import UserError
from wardwatch.paths import OutsideDataDirError, check_data_dir, report_output

__all__ = ["main"]

DEFAULT_CONFIG = Path("wardwatch.yaml")


def _load(path: Path, *, check_environment: bool = False, writes: bool = False) -> WardwatchConfig:
    """The configuration; with ``writes``, its data directory is checked to keep writes inside it."""
    try:
        config = load_config(path, environ=os.environ if check_environment else None)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
    if writes:
        _check_data_dir(config.store.path)
    use_duckdb_settings(config.store)  # every store this process opens: the configured limits
    return config


def _check_data_dir(path: Path) -> None:
    try:
        check_data_dir(path)
    except OutsideDataDirError as exc:
        raise UserError(f"store.path: {exc}") from exc


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=lambda: Path(os.environ.get("WARDWATCH_CONFIG", DEFAULT_CONFIG)),
    show_default="wardwatch.yaml, or $WARDWATCH_CONFIG",
    help="The configuration file.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress and diagnostics to stderr.")
@click.version_option(package_name="wardwatch")
def main(verbose: bool) -> None:
    """Wardwatch: synthetic probes of clinical workflows, and the SLA held against what users feel."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The dashboard's web server logs every request at INFO; keep that for --verbose.
    logging.getLogger("werkzeug").setLevel(logging.INFO if verbose else logging.WARNING)
    # httpx logs whole URLs at INFO, and a URL can hold a patient identifier: never below WARNING.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # apprise's messages can carry a service's URL, and such a URL holds its token.
    logging.getLogger("apprise").setLevel(logging.CRITICAL)


@main.command()
@config_option
@click.option(
    "--online",
    is_flag=True,
    help="Also read each target's CapabilityStatement (/metadata) and report every step whose "
    "resource type, interaction or search parameter the server does not declare.",
)
def check(config_path: Path, online: bool) -> None:
    """Validate a configuration file and report every problem as FILE:LINE:COL: key: message.

    Secrets named by ${env:...} or ${file:...} must be resolvable here, and TLS files readable.
    """
    config = _load(config_path, check_environment=True)
    if online:
        from collector.capabilities import check_capabilities

        found = check_capabilities(config.targets, config.workflows)
        if found:
            located = locate_problems(config_path, [(problem.loc, problem.message) for problem in found])
            raise UserError("\n".join(str(problem) for problem in located))
    click.echo(
        f"{config_path}: ok ({len(config.workflows)} workflows, {len(config.sites)} sites, "
        f"{len(config.targets)} targets, {len(config.objectives)} objectives)"
        + ("; every step is declared by the server's CapabilityStatement" if online else "")
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Scenario YAML for the latency model and faults (default: the packaged scenario).",
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Also write the testbed's server spans into this data directory.",
)
@click.option("--allow-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A host name the testbed answers to besides --host (and localhost); repeatable.")
@click.option("--observatory", "observatory_url", default=None, metavar="URL",
              help="Send the testbed's server spans to this observatory, with the token in $WARDWATCH_EPR_TOKEN_TESTBED.")
def testbed(host: str, port: int, scenario_path: Path | None, store_path: Path | None,
            allowed_hosts: tuple[str, ...], observatory_url: str | None) -> None:
    """Serve the simulated FHIR R4 EPR (the demo's target and the tests' ground truth).

    It answers only to the address it listens on (and --allow-host names); its unauthenticated
    /admin/ endpoints refuse requests from another origin.
    """
    from wardwatch import wiring

    if store_path is not None:
        _check_data_dir(store_path)
    observatory = None
    if observatory_url is not None:
        token = os.environ.get("WARDWATCH_EPR_TOKEN_TESTBED", "")
        if not token:
            raise UserError("--observatory: set WARDWATCH_EPR_TOKEN_TESTBED to the testbed's token (observatory.sources)")
        observatory = (observatory_url, token)
    wiring.serve_testbed(host, port, scenario_path, store_path, allowed_hosts=allowed_hosts, observatory=observatory)


@main.command()
@config_option
@click.option("--once", is_flag=True, help="Run every selected workflow once at every selected site, then exit.")
@click.option("--site", default=None, help="Only this site (one probe process per site in production).")
@click.option("--workflow", default=None, help="Only this workflow.")
@click.option("--observatory", "observatory_url", default=None, metavar="URL",
              help="Send spans to this observatory (through the spool) instead of export.observatory.endpoint.")
def probe(config_path: Path, once: bool, site: str | None, workflow: str | None, observatory_url: str | None) -> None:
    """Run the configured workflows on their cadence (or once) and store every run's spans.

    \b
    Exit codes with --once: 0 every run was ok, 1 some run was not (failed, timed
    out), 2 a configuration error (the configuration, or a store.path that
    cannot be written, checked before anything runs). An observatory that cannot
    be reached is none of these: the runs wait in the spool, and the next probe
    sends them first.
    """
    if not once:  # this process is a probe and nothing else: pyarrow goes without numpy and pandas
        from wardwatch.forgo import forgo

        forgo("numpy", "pandas")
    from wardwatch import forwarding, wiring

    config = _load(config_path, writes=True)
    _check_choice("site", site, [s.name for s in config.sites])
    _check_choice("workflow", workflow, [w.name for w in config.workflows])
    _check_store_writable(config.store.path)
    if observatory_url is not None:
        config = forwarding.with_observatory(config, observatory_url)
    if once:
        results = wiring.probe_once(config, site=site, workflow=workflow)
        for line in wiring.describe_results(results):
            click.echo(line)
        if forwarding.forwarding(config):
            click.echo(forwarding.describe_sent(config, results, site))
        else:
            click.echo(f"{len(results)} run{'' if len(results) == 1 else 's'} stored in {config.store.path}")
        if any(result.status != "ok" for result in results):
            raise click.exceptions.Exit(1)
    else:
        wiring.probe_forever(config, site=site, workflow=workflow, config_path=config_path)


def _check_store_writable(path: Path) -> None:
    """A data directory that cannot take spans is a configuration error, found before any run."""
    from store import StoreError
    from store.layout import check_writable

    try:
        check_writable(path)
    except StoreError as exc:
        raise UserError(f"store.path: {exc}") from exc


@main.command()
@config_option
@click.option("--host", default=None, help="Interface to bind (default: the config's, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="TCP port (default: the config's, 8050).")
def dashboard(config_path: Path, host: str | None, port: int | None) -> None:
    """Serve the dashboard over the configured store."""
    from wardwatch import wiring

    config = _load(config_path)
    wiring.serve_dashboard(config, host=host, port=port, config_dir=config_path.resolve().parent)


def _month(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """``--month``: ``YYYY-MM`` within the years a store can hold (timestamps in ns: 1970 to 2262)."""
    year, _, number = value.partition("-")
    if not (len(year) == 4 and year.isdigit() and len(number) == 2 and number.isdigit()
            and 1970 <= int(year) <= 2261 and 1 <= int(number) <= 12):
        raise click.BadParameter(f"{value!r} is not a month YYYY-MM between 1970-01 and 2261-12")
    return value


@main.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback unless TLS is configured and you mean it).")
@click.option("--port", default=4318, show_default=True, type=click.IntRange(0, 65535), help="TCP port (4318 is OTLP/HTTP's).")
@click.option("--no-dashboard", is_flag=True, help="Receive and maintain the store only; serve no dashboard.")
def observatory(config_path: Path, host: str, port: int, no_dashboard: bool) -> None:
    """The central observatory: every site's probe sends its spans here over OTLP/HTTP, with its token.

    Spans are acknowledged once they are on disk, stored once however often they are sent, and
    kept in the configured store; compaction and retention run here, and the dashboard unless
    --no-dashboard.
    """
    from wardwatch import central

    config = _load(config_path, writes=True)
    central.serve_observatory(config, host=host, port=port, dashboard=not no_dashboard,
                              config_dir=config_path.resolve().parent, config_path=config_path)


@main.command()
@config_option
@click.option("--month", required=True, callback=_month,
              help="The calendar month, YYYY-MM (1970-01 to 2261-12), in the dashboard's time zone.")
@click.option("--format", "output_format", type=click.Choice(["md", "html", "json", "csv"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the report here instead of standard output: a path under the data directory's "
                   "reports/ folder (relative paths are taken from the data directory: reports/2026-10.html).")
def report(config_path: Path, month: str, output_format: str, output: Path | None) -> None:
    """The month's SLA as the contract computes it, beside the experience users had, in plain words first."""
    from wardwatch import wiring

    config = _load(config_path)
    if output is not None:
        try:
            output = report_output(config.store.path, output)
        except OutsideDataDirError as exc:
            raise UserError(f"--output: {exc}") from exc
    text = wiring.report(config, month=month, output_format=output_format, base_dir=config_path.resolve().parent)
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--output: cannot write {output}: {exc.strerror or exc}") from exc
        click.echo(f"report written to {output}", err=True)


@main.group()
def change() -> None:
    """Changes to the EPR (releases) whose impact the report and the dashboard measure."""


@change.command(name="add")
@config_option
@click.option("--at", "at", required=True,
              help="When it took effect: ISO 8601 with an offset, e.g. 2026-11-14T06:00:00Z.")
@click.option("--title", required=True, help="A short name, e.g. 'Release 24.3'; a recorded title is moved.")
@click.option("--workflow", "workflows", multiple=True, help="A workflow it may affect (repeat; none: all).")
@click.option("--description", default="", help="What changed, shown in reports.")
@click.option("--until", "until", default=None,
              help="The end of its planned window (ISO 8601 with an offset): its workflows' alerts are silenced till then.")
def change_add(config_path: Path, at: str, title: str, workflows: tuple[str, ...], description: str,
               until: str | None) -> None:
    """Record a change in the data directory, where the report, the dashboard and the notebooks find it.

    A trust's release calendar can be fed in one release at a time. A recorded change replaces a
    configured one of the same title.
    """
    import datetime as dt

    from pydantic import ValidationError

    from analysis.config import ChangeEventConfig
    from wardwatch import wiring

    config = _load(config_path, writes=True)
    try:
        when = dt.datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UserError(f"--at: not an ISO 8601 time: {at!r} (e.g. 2026-11-14T06:00:00Z)") from exc
    try:
        end = dt.datetime.fromisoformat(until.strip().replace("Z", "+00:00")) if until else None
    except ValueError as exc:
        raise UserError(f"--until: not an ISO 8601 time: {until!r} (e.g. 2026-11-14T07:00:00Z)") from exc
    try:
        event = ChangeEventConfig(at=when, title=title, workflows=list(workflows), description=description, until=end)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = {"at": "--at", "title": "--title", "until": "--until"}.get(
            str(first["loc"][0]) if first["loc"] else "", "--until" if "until" in first["msg"] else "change")
        raise UserError(f"{key}: {first['msg'].removeprefix('Value error, ')}") from exc
    click.echo(wiring.add_change(config, event))


@main.command(name="import")
@config_option
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--duration-unit", type=click.Choice(["ns", "us", "ms", "s"]), default="ms", show_default=True,
              help="Unit of the duration column of request-timing files.")
@click.option("--service-name", default="epr", show_default=True, help="Service name given to imported request timings.")
@click.option("--assume-timezone", default=None, help="Time zone of request-timing timestamps that carry none.")
def import_(config_path: Path, files: tuple[Path, ...], duration_unit: str, service_name: str,
            assume_timezone: str | None) -> None:
    """Import OTLP JSON lines (.jsonl, .gz) or the EPR's own request timings (.csv, .parquet) into the store.

    \b
    Request timings: a CSV (with a header row) or Parquet file with the columns
      timestamp  ISO 8601 with a UTC offset (2026-10-01T08:00:00Z), or see --assume-timezone
      endpoint   "METHOD /path" or "/path" (GET /fhir/Patient/123?identifier=...)
      duration   the time the EPR took to answer, in --duration-unit (default ms)
      status     the HTTP status code (100-599)
    Each row becomes one server span. Paths are stored as templates, never as they were: words
    are kept and every other segment becomes {id} (a segment with a digit or a symbol, and the one
    after a resource type or plural word: /fhir/Patient/123 -> /fhir/Patient/{id}, /api/patients/smith
    -> /api/patients/{id}); query values become REDACTED.
    examples/convert-access-log.py turns an nginx or Apache access log into such a CSV.

    \b
    A bad line is reported as FILE:LINE: reason and skipped; the rest is imported and nothing
    already stored is touched. A span already stored (same trace and span id) is not stored
    again, so an interrupted import can simply be run again.

    \b
    Exit codes: 0 every line imported (or already stored); 1 some lines were skipped (listed),
    the rest imported; 2 nothing imported (a configuration error, or a file that cannot be read).
    """
    from wardwatch import wiring

    config = _load(config_path, writes=True)
    skipped = False
    for line, is_issue in wiring.import_files(
        config, files, duration_unit=duration_unit, service_name=service_name, assume_timezone=assume_timezone
    ):
        skipped |= is_issue
        click.echo(line, err=is_issue)
    if skipped:
        click.echo("some lines were skipped (listed above); the rest were imported", err=True)
        sys.exit(1)


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The configuration file (default: examples/testbed.yaml).",
)
@click.option("--days", default=28, show_default=True, type=click.IntRange(0, 366),
              help="Days of history to simulate before live probing starts (0: none).")
@click.option("--fresh", is_flag=True, help="Rebuild the simulated history instead of reusing it.")
def demo(config_path: Path | None, days: int, fresh: bool) -> None:
    """Simulated history, the testbed EPR, live probes from three sites and the dashboard; Ctrl-C stops all."""
    from wardwatch import wiring

    config_path = config_path or wiring.DEMO_CONFIG
    config = _load(config_path, writes=True)
    wiring.run_demo(config, days=days, fresh=fresh, config_dir=config_path.resolve().parent, config_path=config_path)


@main.command(name="upgrade-store")
@click.argument("store_path", type=click.Path(path_type=Path, file_okay=False, exists=True), required=False)
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The configuration: upgrades its store.path and builds the pre-aggregates its figures read.")
def upgrade_store(store_path: Path | None, config_path: Path | None) -> None:
    """Upgrade a store written by an older Wardwatch to this one, in place.

    Rewrites the segments of an older schema, and with -c builds the pre-aggregates the dashboard
    reads (once, with a progress bar; the maintenance keeps them from then on). Nothing is lost,
    and running it again after an interruption finishes the job. Stop the probes and imports that
    write to the store first; readers may stay.
    """
    from wardwatch import wiring

    if (store_path is None) == (config_path is None):
        raise click.UsageError("give either -c FILE or the store's directory")
    if config_path is not None:
        wiring.upgrade_with_config(_load(config_path, writes=True))
        return
    assert store_path is not None
    _check_data_dir(store_path)
    if wiring.upgrade(store_path) == 0:
        click.echo(f"{store_path}: nothing to upgrade (no store here, or already this version)", err=True)


@main.command()
@config_option
@click.option("--once", is_flag=True, help="Evaluate once, try to deliver what is due, then exit.")
def alerts(config_path: Path, once: bool) -> None:
    """Evaluate every alert and deliver what is due (every alerting.interval_s, or --once).

    \b
    Burn-rate alerts of every objective and SLA, a site gone silent, every run of a
    workflow failing. State and undelivered notifications are kept in the data
    directory (alerting/state.json). Exit codes with --once: 0 delivered (or
    nothing due), 1 some receiver failed (kept, retried next time), 2 a
    configuration error.
    """
    from wardwatch.alerts import run_alerts

    config = _load(config_path, writes=True)
    try:
        active, failures = run_alerts(config, once=once, config_dir=config_path.resolve().parent)
    except ValueError as exc:  # a secret its reference does not lead to
        raise UserError(str(exc)) from exc
    if once:
        for alert in sorted(active, key=lambda a: sorted(a["labels"].items())):
            labels = " ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()) if k != "alertname")
            why = f": {alert['planned']}" if alert.get("planned") else ""
            status = f"{alert['status']}{f' (silenced{why})' if alert.get('silenced') else ''}"
            click.echo(f"{status:8} {alert['labels']['alertname']} {labels}: {alert['annotations']['summary']}")
        click.echo(f"{len(active)} alert{'' if len(active) == 1 else 's'} pending or firing")
        for line in failures:
            click.echo(line, err=True)
        if failures:
            raise click.exceptions.Exit(1)


@main.group()
def silence() -> None:
    """Silence alerts for a while (here, and in every configured Alertmanager)."""


def _matcher(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    matchers = {}
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key.strip() or not wanted.strip():
            raise click.BadParameter(f"{value!r} is not KEY=VALUE (site=ward-7)")
        matchers[key.strip()] = wanted.strip()
    return matchers


@silence.command(name="add")
@config_option
@click.option("--matcher", "matchers", multiple=True, required=True, callback=_matcher,
              help="KEY=VALUE a label must equal (repeatable; all must hold): site=ward-7, alertname=SiteSilent.")
@click.option("--until", required=True, help="When it ends: 2026-11-02T17:00 (dashboard.timezone unless an offset is given), or 30m, 2h, 1d from now.")
@click.option("--reason", required=True, help="Why, shown with the silence.")
def silence_add(config_path: Path, matchers: dict[str, str], until: str, reason: str) -> None:
    """Silence the alerts whose labels match, until a time; prints its id."""
    import datetime as dt

    from wardwatch.alerts import add_silence, parse_until

    config = _load(config_path, writes=True)
    now = dt.datetime.now(dt.UTC)
    try:
        made, failures = add_silence(config, matchers, parse_until(until, now, config.dashboard.timezone), reason, now)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"{made['id']} until {made['ends_at']}: " + ", ".join(f"{k}={v}" for k, v in made["matchers"].items()))
    for line in failures:
        click.echo(line, err=True)
    if failures:
        raise click.exceptions.Exit(1)


@silence.command(name="list")
@config_option
def silence_list(config_path: Path) -> None:
    """The silences in force, and those ended in the last day."""
    import datetime as dt

    from zoneinfo import ZoneInfo

    from alerting.silences import is_active, load_silences

    config = _load(config_path)
    now = dt.datetime.now(dt.UTC)
    for item in load_silences(config.store.path):
        ended = dt.datetime.fromisoformat(item["ends_at"])
        if is_active(item, now) or now - ended < dt.timedelta(days=1):
            state = "active" if is_active(item, now) else "expired"
            matchers = ", ".join(f"{k}={v}" for k, v in item["matchers"].items())
            local = ended.astimezone(ZoneInfo(config.dashboard.timezone))
            click.echo(f"{item['id']} {state} until {local:%Y-%m-%d %H:%M %Z} {matchers}: {item['reason']}")


@silence.command(name="expire")
@config_option
@click.argument("silence_id")
def silence_expire(config_path: Path, silence_id: str) -> None:
    """End a silence now (here and in the Alertmanagers that hold it)."""
    import datetime as dt

    from wardwatch.alerts import expire_silence

    config = _load(config_path, writes=True)
    try:
        _, failures = expire_silence(config, silence_id, dt.datetime.now(dt.UTC))
    except KeyError as exc:
        raise UserError(f"no silence with id {silence_id!r} (see wardwatch silence list)") from exc
    click.echo(f"{silence_id} expired")
    for line in failures:
        click.echo(line, err=True)
    if failures:
        raise click.exceptions.Exit(1)


@main.group()
def notice() -> None:
    """Notices to clinicians on the status page, per site."""


@notice.command(name="add")
@config_option
@click.option("--site", required=True, help="The site it is for, or 'all'.")
@click.option("--text", required=True, help="Plain words: what is affected, can they carry on, when the next update comes.")
def notice_add(config_path: Path, site: str, text: str) -> None:
    """Add a notice for a site's clinicians; shown on the status page."""
    import datetime as dt

    from analysis.notices import ALL_SITES, add_notice

    config = _load(config_path, writes=True)
    if site != ALL_SITES:
        _check_choice("site", site, [s.name for s in config.sites])
    try:
        made = add_notice(config.store.path, site, text, dt.datetime.now(dt.UTC))
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"{made.id if made else 'already there'}: {site}: {text.strip()}")


@notice.command(name="edit")
@config_option
@click.argument("notice_id")
@click.option("--text", required=True, help="The notice's new words (it keeps its place and says when it was updated).")
def notice_edit(config_path: Path, notice_id: str, text: str) -> None:
    """Change a notice's text (its id from wardwatch notice list)."""
    import datetime as dt

    from analysis.notices import edit_notice

    config = _load(config_path, writes=True)
    try:
        edited = edit_notice(config.store.path, notice_id, text, dt.datetime.now(dt.UTC))
    except KeyError as exc:
        raise UserError(f"no notice with id {notice_id!r} (see wardwatch notice list)") from exc
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"{edited.id}: {edited.site}: {edited.text}")


@notice.command(name="list")
@config_option
@click.option("--site", default=None, help="Only this site's notices (and those for every site).")
def notice_list(config_path: Path, site: str | None) -> None:
    """The newest notices first."""
    from analysis.notices import read_notices

    config = _load(config_path)
    for item in read_notices(config.store.path, site=site):
        edited = f", updated {item.edited}" if item.edited else ""
        click.echo(f"{item.id} {item.at} {item.site} ({item.source}{edited}): {item.text}")


def _check_choice(what: str, value: str | None, names: list[str]) -> None:
    if value is not None and value not in names:
        known = ", ".join(names) or "none configured"
        raise UserError(f"no {what} named {value!r} in the configuration (known: {known})")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
