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
    # A probe's footprint (docs/benchmarks.md, "Browser runs"): the GPU and network services inside
    # the browser process, no spare renderer kept warm, one renderer for the one page (test pages
    # need no site isolation), no zygote processes, a small young generation for the page's V8.
    # The full browser's headless mode also draws a window's toolbar and preloads its address
    # bar's popup as web pages, in a second renderer of their own: the WebUI features are off.
    "--in-process-gpu",
    "--enable-features=NetworkServiceInProcess2",
    "--disable-features=SpareRendererForSitePerProcess,site-per-process,IsolateOrigins,Translate,MediaRouter,"
    "WebUIOmniboxPopup,WebUIOmniboxAimPopup,WebUIOmniboxFullPopup",
    "--renderer-process-limit=1",
    "--disable-site-isolation-trials",
    "--disable-extensions",
    "--no-zygote",
    "--js-flags=--max-semi-space-size=1",
)
INSTALL_HINT = (
    "Chromium is needed for browser workflows and was not found: install it "
    "(Debian/Ubuntu: apt-get install chromium-headless-shell, or chromium) or set WARDWATCH_CHROMIUM to its path"
)
# Chromium's headless shell first: the same engine without the browser's windows, toolbar and
# services, at about 60% of the full browser's memory (and what Playwright itself runs headless).
_NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserMissingError(RuntimeError):
    """No Chromium to drive; the message is one line saying what to install."""


def find_chromium(environ: Mapping[str, str]) -> str:
    """The Chromium executable: ``WARDWATCH_CHROMIUM`` when set, else the first on ``PATH`` of
    Chromium's headless shell and the full browser.

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
