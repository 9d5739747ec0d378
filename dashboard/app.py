"""The Dash application factory and a server that can be stopped."""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import dash
import flask
from dash import dcc, html
from dash.exceptions import DependencyException
from werkzeug.serving import BaseWSGIServer, make_server

from analysis.query import preagg
from dashboard.context import DashboardContext
from dashboard.data import definitions
from dashboard.filters import register_callbacks as register_filter_callbacks
from dashboard.jobs import Jobs, install_jobs

__all__ = ["DashboardServer", "create_app"]

_PAGES = Path(__file__).parent / "pages"
REFRESH_S = 60.0  # how often the pre-aggregates are brought up to date (buckets close every 15 min)
_log = logging.getLogger(__name__)


def create_app(context: DashboardContext) -> dash.Dash:
    """A multi-page Dash app reading the store at ``context.data_dir``. No I/O happens here: the
    store is opened on the first request."""
    app = dash.Dash(
        __name__,
        use_pages=True,
        pages_folder=str(_PAGES),
        title="Wardwatch",
        update_title=None,
        suppress_callback_exceptions=True,
    )
    context.install(app.server)
    register_filter_callbacks(app)
    install_jobs(app.server, Jobs())
    # A component path Dash refuses (a traversal attempt) is "not found", not a logged server error.
    app.server.register_error_handler(DependencyException, lambda _exc: ("not found", 404))
    app.layout = html.Div(
        className="wardwatch",
        children=[
            html.Header(
                [
                    html.H1("Wardwatch", style={"margin": "0 1em 0 0", "fontSize": "1.4em"}),
                    html.Nav(
                        [
                            dcc.Link(page["name"], href=page["relative_path"], style={"marginRight": "1em"})
                            for page in dash.page_registry.values()
                        ]
                    ),
                ],
                style={"display": "flex", "alignItems": "baseline", "borderBottom": "1px solid #ccc"},
            ),
            dash.page_container,
        ],
        style={"fontFamily": "system-ui, sans-serif", "margin": "0 1.5em"},
    )
    return app


_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names, not a bind


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host_header: str, bound_host: str, allowed: Iterable[str] = ()) -> bool:
    """Whether a request's ``Host`` names the address the dashboard serves (DNS rebinding guard).

    A browser tricked into sending ``Host: evil.example`` to 127.0.0.1 is refused. Loopback binds
    also answer to ``localhost``; an all-interfaces bind to any IP address (an address cannot be
    rebound) and to ``allowed`` (``dashboard.allowed_hosts``: e.g. the machine's DNS name).
    """
    name = (urlsplit(f"//{host_header}").hostname or "").lower()
    bound = bound_host.strip("[]").lower()
    names = {bound, *(a.lower() for a in allowed)}
    if bound in _WILDCARDS or bound == "localhost" or _is_ip(bound) and ipaddress.ip_address(bound).is_loopback:
        names |= _LOOPBACK_NAMES
    if bound in _WILDCARDS and _is_ip(name):
        return True
    return bool(name) and name in names


def _guard_hosts(server: flask.Flask, bound_host: str, allowed: Iterable[str]) -> None:
    """Refuse unknown ``Host`` headers (421), and changes requested from another site's page (403)."""
    allowed = tuple(allowed)

    def check() -> tuple[str, int] | None:
        request = flask.request
        if not host_allowed(request.host, bound_host, allowed):
            return "this dashboard does not answer to that Host", 421
        origin = request.headers.get("Origin")
        if request.method not in ("GET", "HEAD", "OPTIONS") and origin is not None and origin != "null":
            if not host_allowed(urlsplit(origin).netloc, bound_host, allowed):
                return "cross-origin requests are refused", 403
        return None

    server.before_request(check)


class DashboardServer:
    """Serves an app on a background thread; ``port=0`` picks a free port. Stops cleanly.

    Answers only to the address it serves (and ``allowed_hosts``): see :func:`host_allowed`.
    """

    def __init__(self, app: dash.Dash, host: str = "127.0.0.1", port: int = 8050,
                 allowed_hosts: Iterable[str] = ()) -> None:
        _guard_hosts(app.server, host, allowed_hosts)
        self._server: BaseWSGIServer = make_server(host, port, app.server, threaded=True)
        self.host = host
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard", daemon=True)
        self._context: DashboardContext = app.server.config["WARDWATCH_DASHBOARD"]
        self._stopped = threading.Event()
        self._refresher = threading.Thread(target=self._refresh, name="dashboard-aggregates", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> DashboardServer:
        """Serve, and keep the store's pre-aggregates up to date in the background."""
        self._refresher.start()
        self._thread.start()
        return self

    def _refresh(self) -> None:
        """Build the pre-aggregates of buckets closed since anyone last did (a store's maintenance
        keeps them too; one process builds at a time, the others skip). A store no maintenance
        keeps (a lone probe's) is pre-aggregated here, once, and then as it grows; meanwhile the
        pages read exact rows where no bucket is built."""
        defs = definitions(self._context)
        while not self._stopped.is_set():
            try:
                preagg.refresh(self._context.data_dir, defs)
            except Exception:  # a background boundary: the pages read exact rows meanwhile
                _log.exception("cannot pre-aggregate the store at %s", self._context.data_dir)
            self._stopped.wait(REFRESH_S)

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()
        self._refresher.join(timeout=30)

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
