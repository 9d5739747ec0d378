"""The dashboard: a multi-page Dash app that only reads what ``analysis`` computes."""

from dashboard.app import DashboardServer, create_app
from dashboard.config import DashboardConfig
from dashboard.context import DashboardContext

__all__ = ["DashboardConfig", "DashboardContext", "DashboardServer", "create_app"]
