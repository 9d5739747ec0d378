"""Run the testbed over real HTTP: in a background thread (tests, demo) or blocking (CLI)."""

from __future__ import annotations

import asyncio
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from opentelemetry import trace
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from testbed.app import TestbedState, create_app
from testbed.hostguard import HostGuard
from testbed.data import DEFAULT_PATIENT_COUNT, DEFAULT_SEED
from testbed.middleware import RECEIVED_AT_EXTENSION
from testbed.scenario import FaultRule, Scenario, load_scenario

__all__ = ["TestbedServer", "TestbedServerError", "precise_event_loop", "prioritise_session", "serve"]

_AUTOGROUP = Path("/proc/self/autogroup")
_SERVER_NICE = -10


def prioritise_session(nice: int = _SERVER_NICE) -> bool:
    """Give this process's session the scheduling weight of a busy server's (Linux autogroups).

    For a testbed started as the ground truth of a timing test or benchmark, in a session of
    its own (``start_new_session=True``): on a machine shared with other work, the testbed then
    gets a core promptly when a request arrives or a modelled delay ends, as an EPR on its own
    hardware would, and its timing errors do not pass for the probe's. It never spins, so the
    weight costs others nothing while it waits. Needs ``CAP_SYS_NICE`` for a negative ``nice``.

    Returns:
        True when the weight was set; False where it is not permitted or not supported (the
        testbed then runs as any process does).
    """
    try:
        _AUTOGROUP.write_text(f"{nice}\n", encoding="ascii")
    except OSError:
        return False
    return True


class _PreciseSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The platform's selector, with timeouts kept to the microsecond.

    ``epoll`` (and ``poll``) take their timeout in whole milliseconds, rounded up, so an asyncio
    timer fires up to a millisecond late: a modelled 5 ms wait became ~6 ms. ``select()`` on the
    selector's own descriptor waits with microsecond precision (it becomes readable when any
    registered socket is ready); the events are then collected without waiting.
    """

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0 and hasattr(self, "fileno"):
            try:
                select.select([self.fileno()], [], [], timeout)
            except ValueError:  # a descriptor above select()'s limit: wait as the selector does
                return super().select(timeout)
            timeout = 0
        return super().select(timeout)


def precise_event_loop() -> asyncio.AbstractEventLoop:
    """A new asyncio loop whose timers fire within microseconds (uvicorn's ``loop`` setting), so
    the modelled delays are waited without spinning: a spinning server takes a core from the
    probe it is measured by."""
    return asyncio.SelectorEventLoop(_PreciseSelector())


class _ReceivedAtH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, stamping each request with the moment its bytes were read.

    The modelled delay runs from the request's arrival at the server, not from when Python has
    parsed it and scheduled the app (0.3-0.5 ms later on a busy machine): the stamp is put in the
    scope's ``extensions`` under :data:`testbed.middleware.RECEIVED_AT_EXTENSION`.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # With TCP_DEFER_ACCEPT (see _listening_socket) a connection is accepted once its first
        # request has arrived: its bytes were here before Python accepted it. Checked, not assumed.
        now_s = time.perf_counter()
        self._waiting_since_s: float | None = None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                readable, _, _ = select.select([sock.fileno()], [], [], 0)
            except (OSError, ValueError):
                readable = []
            if readable:
                self._waiting_since_s = now_s
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        received_s = time.perf_counter()
        waiting_since_s = getattr(self, "_waiting_since_s", None)
        if waiting_since_s is not None:
            received_s = min(received_s, waiting_since_s)
            self._waiting_since_s = None
        before = getattr(self, "scope", None)
        super().data_received(data)
        scope = getattr(self, "scope", None)
        if scope is not None and scope is not before:
            scope.setdefault("extensions", {})[RECEIVED_AT_EXTENSION] = {"perf_counter_s": received_s}


_LOOP = f"{__name__}:precise_event_loop"
_DEFER_ACCEPT_S = 1


def _listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn (0 picks a free port).

    ``proto=IPPROTO_TCP`` matters: asyncio sets TCP_NODELAY on accepted sockets only when the
    listening socket says TCP; without it Nagle + delayed ACK add ~40 ms to each response.
    ``TCP_DEFER_ACCEPT`` (Linux; as nginx's ``deferred``) wakes the server when a connection's
    first request has arrived, not at the handshake: a probe's connect is not slowed by the
    server taking the core to accept it (client and server share this machine's cores).

    Raises:
        OSError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, _DEFER_ACCEPT_S)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class TestbedServerError(RuntimeError):
    """The server did not start (port taken, startup failure) or did not stop in time."""

    __test__ = False


class TestbedServer:
    """The testbed EPR served by uvicorn in a background thread.

    Use as a context manager (``with TestbedServer() as tb: httpx.get(tb.fhir_url + "/metadata")``)
    or call :meth:`start` and :meth:`stop`. ``port=0`` picks a free port; :attr:`base_url` and
    :attr:`fhir_url` are known once started.

    Args:
        scenario: the scenario (None: the packaged default).
        host: interface to bind (keep 127.0.0.1 in tests).
        port: TCP port; 0 picks a free one.
        seed: seed of the synthetic data and the fault RNG.
        tracer_provider: where server spans go (None: the global provider).
        clock: "now" for the latency model and token expiry (None: the real clock).
        sleep: False answers without waiting the modelled delay.
        patients: how many synthetic patients (fewer start faster; the default has 240).
        log_level: uvicorn's log level ("warning" keeps tests quiet).
        startup_timeout_s: how long :meth:`start` waits for the server to accept connections.
        shutdown_timeout_s: how long in-flight requests (e.g. a ``hang`` fault) may take on stop.
        allowed_hosts: names besides ``host`` the server answers to (``testbed.hostguard``:
            another ``Host`` is refused, as is a cross-origin request to ``/admin/``).
    """

    __test__ = False

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = DEFAULT_SEED,
        tracer_provider: trace.TracerProvider | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: bool = True,
        patients: int = DEFAULT_PATIENT_COUNT,
        log_level: str = "warning",
        startup_timeout_s: float = 10.0,
        shutdown_timeout_s: float = 1.0,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self._host = host
        self._allowed_hosts = tuple(allowed_hosts)
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._shutdown_timeout_s = shutdown_timeout_s
        self._log_level = log_level
        self.app: Starlette = create_app(scenario, seed=seed, tracer_provider=tracer_provider,
                                         clock=clock, sleep=sleep, patients=patients)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def state(self) -> TestbedState:
        """The app's state (data, faults, tokens)."""
        state: TestbedState = self.app.state.testbed
        return state

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._port is None:
            raise TestbedServerError("the server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (no trailing slash)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def fhir_url(self) -> str:
        """The FHIR base, ``http://HOST:PORT/fhir``."""
        return f"{self.base_url}/fhir"

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint."""
        return f"{self.base_url}/auth/token"

    def set_faults(self, rules: Iterable[FaultRule | Mapping[str, Any]]) -> None:
        """Replace the active fault rules (same effect as ``PUT /admin/faults``).

        ``rules`` may be :class:`FaultRule` objects or plain mappings such as
        ``{"endpoint": "GET /Patient/{id}", "kind": "5xx", "status": 503, "rate": 1.0}``.
        """
        self.state.faults.replace(rules)

    def clear_faults(self) -> None:
        """Remove all fault rules (same effect as ``DELETE /admin/faults``)."""
        self.state.faults.clear()

    def start(self) -> TestbedServer:
        """Bind, start serving in a daemon thread, and wait until connections are accepted.

        Raises:
            TestbedServerError: the port cannot be bound or the server did not come up in time.
        """
        if self._thread is not None:
            raise TestbedServerError("the server is already started")
        try:
            sock = _listening_socket(self._host, self._requested_port)
        except OSError as exc:
            raise TestbedServerError(
                f"cannot bind {self._host}:{self._requested_port}: {exc.strerror}") from exc
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            HostGuard(self.app, self._host, self._allowed_hosts), log_level=self._log_level, access_log=False, lifespan="off",
            timeout_graceful_shutdown=int(max(1, round(self._shutdown_timeout_s))),
            loop=_LOOP, http=_ReceivedAtH11Protocol,
        )
        server = uvicorn.Server(config)
        self.state.stopping.clear()
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                        name=f"testbed-{self._port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not server.started:
            if not self._thread.is_alive():
                sock.close()
                raise TestbedServerError("the testbed server exited during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise TestbedServerError("the testbed server did not start in time")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread (in-flight requests get a short grace)."""
        if self._server is None or self._thread is None:
            return
        self.state.stopping.set()  # in-flight waits and hangs end now
        self._server.should_exit = True
        self._thread.join(timeout=self._shutdown_timeout_s + 10.0)
        alive = self._thread.is_alive()
        self._server = None
        self._thread = None
        if alive:
            raise TestbedServerError("the testbed server did not stop in time")

    def __enter__(self) -> TestbedServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    scenario_path: Path | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    allowed_hosts: Iterable[str] = (),
) -> None:
    """Serve the testbed until interrupted; for ``wardwatch testbed --host --port``.

    Ctrl-C (SIGINT) shuts down gracefully and returns normally (uvicorn re-raises the interrupt
    after its shutdown; it is absorbed here). SIGTERM ends the process, as uvicorn does.

    Args:
        host: interface to bind.
        port: TCP port.
        scenario_path: a scenario YAML file (None: the packaged default).
        tracer_provider: where server spans go (None: the global provider).
        allowed_hosts: names besides ``host`` it answers to (``testbed.hostguard``).

    Raises:
        testbed.scenario.ScenarioError: the scenario file is unreadable or invalid.
    """
    scenario = load_scenario(scenario_path)
    app = create_app(scenario, tracer_provider=tracer_provider)
    config = uvicorn.Config(HostGuard(app, host, allowed_hosts), host=host, port=port, log_level="info", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=2, loop=_LOOP,
                            http=_ReceivedAtH11Protocol)
    sock = _listening_socket(host, port)
    try:
        _StoppingServer(config, app.state.testbed.stopping).run(sockets=[sock])
    except KeyboardInterrupt:
        return  # the server has already shut down; Ctrl-C is how one stops it


class _StoppingServer(uvicorn.Server):
    """A uvicorn server that tells the app when it starts shutting down (a signal asked it to
    exit), so modelled delays and hangs in flight end instead of holding the shutdown.

    The event is set as the shutdown begins, on the event loop, not in the signal handler: a
    handler runs between two bytecodes of the main thread and the event's lock is not
    re-entrant, so setting it there could deadlock (a testbed stopped by SIGTERM hung so).
    """

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self._stopping = stopping

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._stopping.set()
        await super().shutdown(sockets)
