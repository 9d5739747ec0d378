"""One browser per probe process, on a thread of its own.

Playwright's synchronous API belongs to the thread that started it, while the probe runs jobs
on many threads; so one thread owns Playwright and the browser, and runs are handed to it one at
a time (at most one browser run at a time per probe process). The browser is started on the
first run and started again if it has gone (a crash), never once per run.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from collector.browser.chromium import CHROMIUM_ARGS

__all__ = ["BrowserHost"]

T = TypeVar("T")
_STOP = object()
# Playwright's Node.js driver only relays commands and events: a small young generation and no JIT
# compiler keep its memory down (docs/benchmarks.md, "Browser runs"); without a JIT it also has no
# WebAssembly, which only Playwright's image comparison and trace tools use, never a probe. Given
# to the driver alone; a NODE_OPTIONS of the probe's environment is left as it is.
DRIVER_NODE_OPTIONS = "--max-semi-space-size=1 --jitless"
_ENVIRON_LOCK = threading.Lock()


def _start_playwright() -> Any:
    """Playwright started with :data:`DRIVER_NODE_OPTIONS` in its driver's environment (which it
    copies from this process's when it starts the driver)."""
    from playwright.sync_api import sync_playwright  # only a probe with a browser workflow pays for it

    with _ENVIRON_LOCK:
        given = "NODE_OPTIONS" in os.environ
        if not given:
            os.environ["NODE_OPTIONS"] = DRIVER_NODE_OPTIONS
        try:
            return sync_playwright().start()
        finally:
            if not given:
                os.environ.pop("NODE_OPTIONS", None)


class BrowserHost:
    """Runs functions of a Playwright ``Browser`` on the browser's own thread.

    Args:
        executable: the Chromium to drive (:func:`collector.browser.chromium.find_chromium`).
    """

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._kept: dict[str, Any] = {}  # touched on the browser's thread only; gone with the browser

    def kept(self, key: str, make: Callable[[], T]) -> T:
        """On the browser's thread (inside :meth:`call`): what ``make()`` made for ``key`` in an
        earlier call, kept until the browser goes (e.g. a context kept across runs); made now
        the first time. Closing the browser closes what it made."""
        if key not in self._kept:
            self._kept[key] = make()
        return self._kept[key]

    def forget(self, key: str) -> None:
        """On the browser's thread: stop keeping what :meth:`kept` made for ``key``."""
        self._kept.pop(key, None)

    def call(self, fn: Callable[[Any], T]) -> T:
        """``fn(browser)`` on the browser's thread; waits for it and returns (or raises) its result."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="wardwatch browser", daemon=True)
                self._thread.start()
        future: Future[T] = Future()
        self._jobs.put((fn, future))
        return future.result()

    def close(self) -> None:
        """Close the browser and stop its thread (idempotent)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(_STOP)
            thread.join(timeout=30)

    def _serve(self) -> None:
        playwright = browser = None
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    break
                fn, future = job
                try:
                    if playwright is None:
                        playwright = _start_playwright()
                    if browser is None or not browser.is_connected():
                        self._kept.clear()  # its contexts went with it
                        browser = playwright.chromium.launch(executable_path=self.executable, args=list(CHROMIUM_ARGS))
                    future.set_result(fn(browser))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    future.set_exception(exc)
        finally:
            if browser is not None and browser.is_connected():
                browser.close()
            if playwright is not None:
                playwright.stop()
