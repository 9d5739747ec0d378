"""The dashboard: a multi-page Dash app that only reads what ``analysis`` computes.

``create_app`` and ``DashboardServer`` are imported on first use, so that reading the
configuration (``DashboardConfig``) does not load Dash.
"""

from typing import TYPE_CHECKING, Any

from dashboard.config import DashboardConfig

if TYPE_CHECKING:
    from dashboard.app import DashboardServer, create_app
    from dashboard.context import DashboardContext

__all__ = ["DashboardConfig", "DashboardContext", "DashboardServer", "create_app"]


def __getattr__(name: str) -> Any:
    if name in ("DashboardServer", "create_app"):
        from dashboard import app

        return getattr(app, name)
    if name == "DashboardContext":
        from dashboard.context import DashboardContext

        return DashboardContext
    raise AttributeError(f"module 'dashboard' has no attribute {name!r}")
