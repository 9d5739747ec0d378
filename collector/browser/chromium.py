"""Finding and starting the system's Chromium (Playwright's own browsers are never downloaded)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping

__all__ = ["CHROMIUM_ARGS", "INSTALL_HINT", "BrowserMissingError", "find_chromium"]

# Headless, for a probe on a server: no sandbox (a container has no user namespaces), no GPU, no
# /dev/shm (small in containers), and none of the browser's own traffic to Google.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    # A probe's footprint: the GPU and network services inside the browser process, no spare
    # renderer kept warm, one renderer for the one page (test pages need no site isolation).
    "--in-process-gpu",
    "--enable-features=NetworkServiceInProcess2",
    "--disable-features=SpareRendererForSitePerProcess,site-per-process,IsolateOrigins,Translate,MediaRouter",
    "--renderer-process-limit=1",
    "--disable-site-isolation-trials",
    "--disable-extensions",
)
INSTALL_HINT = (
    "Chromium is needed for browser workflows and was not found: install it "
    "(Debian/Ubuntu: apt-get install chromium) or set WARDWATCH_CHROMIUM to its path"
)
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserMissingError(RuntimeError):
    """No Chromium to drive; the message is one line saying what to install."""


def find_chromium(environ: Mapping[str, str]) -> str:
    """The Chromium executable: ``WARDWATCH_CHROMIUM`` when set, else the first on ``PATH``.

    Raises:
        BrowserMissingError: none is installed (or ``WARDWATCH_CHROMIUM`` names no executable).
    """
    given = environ.get("WARDWATCH_CHROMIUM")
    if given:
        found = shutil.which(given)
        if found is None:
            raise BrowserMissingError(f"WARDWATCH_CHROMIUM={given} is not an executable; {INSTALL_HINT}")
        return found
    for name in _NAMES:
        found = shutil.which(name, path=environ.get("PATH"))
        if found is not None:
            return found
    raise BrowserMissingError(INSTALL_HINT)
