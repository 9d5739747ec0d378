"""One browser per probe process, on a thread of its own.

Playwright's synchronous API belongs to the thread that started it, while the probe runs jobs
on many threads; so one thread owns Playwright and the browser, and runs are handed to it one at
a time (at most one browser run at a time per probe process). The browser is started on the
first run and started again if it has gone (a crash), never once per run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from collector.browser.chromium import CHROMIUM_ARGS

__all__ = ["BrowserHost"]

T = TypeVar("T")
_STOP = object()


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
        from playwright.sync_api import sync_playwright  # only a probe with a browser workflow pays for it

        with sync_playwright() as playwright:
            browser = None
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    break
                fn, future = job
                try:
                    if browser is None or not browser.is_connected():
                        browser = playwright.chromium.launch(executable_path=self.executable, args=list(CHROMIUM_ARGS))
                    future.set_result(fn(browser))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    future.set_exception(exc)
            if browser is not None and browser.is_connected():
                browser.close()
