"""The testbed's web front end: a small EPR web application under ``/app/`` on the testbed's port.

Plain HTML and JavaScript (``static/``), no build step: sign in, find a patient by MRN, open the
record (the banner, then five panels fetched from the FHIR API by the page), chart a heart rate,
a ward's handover list. How the page behaves at a moment is :func:`testbed.web.model.page_plan`,
embedded in the page as JSON when it is served, so the model is the ground truth for what a
browser probe measures.
"""

from __future__ import annotations

import json
from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from testbed.data import MRN_SYSTEM
from testbed.web.model import page_plan

__all__ = ["APP_PATH", "STATIC_PATHS", "web_routes"]

APP_PATH = "/app/"
_ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
STATIC_PATHS = (APP_PATH, *(APP_PATH + name for name in _ASSETS))


def _read(name: str) -> str:
    return resources.files("testbed.web").joinpath("static", name).read_text(encoding="utf-8")


def web_routes() -> list[BaseRoute]:
    """The front end's routes; the page and its assets are read once, here."""
    index = _read("index.html")
    assets = {name: _read(name) for name in _ASSETS}

    async def page(request: Request) -> Response:
        state = request.app.state.testbed
        plan = {**page_plan(state.clock(), state.scenario).as_json(), "mrn_system": MRN_SYSTEM}
        # "</" cannot end the script element early: JSON escapes it as "<\/".
        body = index.replace("{{PLAN}}", json.dumps(plan).replace("</", "<\\/"))
        return Response(body, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    def asset(name: str) -> Route:
        async def serve(request: Request) -> Response:
            # Cacheable, so a workflow that keeps a warm cache sees what a clinician's browser does.
            return Response(assets[name], media_type=_ASSETS[name], headers={"Cache-Control": "max-age=3600"})

        return Route(APP_PATH + name, serve, methods=["GET"])

    async def to_app(request: Request) -> Response:
        return RedirectResponse(APP_PATH)

    return [Route("/app", to_app, methods=["GET"]), Route(APP_PATH, page, methods=["GET"]),
            *(asset(name) for name in _ASSETS)]
