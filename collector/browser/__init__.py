"""Browser workflows: Playwright driving the system's Chromium, one browser per probe process.

- :mod:`collector.browser.chromium`: finding the browser (and saying what to install without it)
- :mod:`collector.browser.host`: the browser on a thread of its own, one run at a time
- :mod:`collector.browser.runner`: one run as one trace, in a fresh context
- :mod:`collector.browser.urls`: the page's request URLs as templates, queries redacted

Importing this package does not import Playwright: a probe without browser workflows never
loads it.
"""

from collector.browser.chromium import INSTALL_HINT, BrowserMissingError, find_chromium
from collector.browser.host import BrowserHost
from collector.browser.runner import run_browser_workflow

__all__ = ["INSTALL_HINT", "BrowserHost", "BrowserMissingError", "find_chromium", "run_browser_workflow"]
