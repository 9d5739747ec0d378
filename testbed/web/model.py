"""The web front end's latency model: what the page adds to the API's time, as ground truth.

Pure, like :mod:`testbed.latency`: no clock, no I/O. The server embeds :func:`page_plan` for the
moment a page is served, and the page's JavaScript follows it exactly; a test or the analysis
asks :func:`record_visible_s` when the record should have become visible.

Opening a record (the page's ``openRecord``):

    banner   = the patient's read (``GET /Patient/{id}``), then the banner is drawn
    panels   = encounters, vital signs, medications, allergies, notes (one search each),
               fetched together, or one after another once a release says ``sequential_panels``
    render   = note_render_ms x notes shown: main-thread work when the notes list is drawn
               (a long task), done as the notes arrive
    linger   = spinner_linger_ms: the spinner stays after the last panel is drawn

    visible  = banner + max(panels except notes, notes + render) + linger      (together)
    visible  = banner + sum(panels) + render + linger                           (one after another)

"Visible" is the moment the spinner is gone (``#record-spinner`` hidden, ``#record`` marked
``data-state="ready"``): the record is on the screen and the page says it is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from testbed.latency import modelled_delay
from testbed.scenario import Scenario

__all__ = [
    "BANNER_ENDPOINT",
    "PANEL_ENDPOINTS",
    "PagePlan",
    "page_plan",
    "record_api_s",
    "record_visible_s",
]

BANNER_ENDPOINT = "GET /Patient/{id}"
# The record page's panels in the order it asks for them: (panel id, route key).
PANEL_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("encounters", "GET /Encounter"),
    ("vitals", "GET /Observation"),
    ("medications", "GET /MedicationRequest"),
    ("allergies", "GET /AllergyIntolerance"),
    ("notes", "GET /DocumentReference"),
)
NOTES_SHOWN_MAX = 10  # the notes panel asks for the newest ten (_count=10)


@dataclass(frozen=True)
class PagePlan:
    """How the record page behaves when served at a given moment.

    Attributes:
        sequential_panels: fetch the panels one after another instead of together.
        note_render_ms: main-thread work per note drawn.
        spinner_linger_ms: how long the spinner stays after the last panel.
        releases: names of the front-end releases in force.
    """

    sequential_panels: bool
    note_render_ms: float
    spinner_linger_ms: float
    releases: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """What the page reads (embedded in ``/app/`` as JSON)."""
        data = asdict(self)
        data["releases"] = list(self.releases)
        return data


def page_plan(at: datetime, scenario: Scenario) -> PagePlan:
    """The front end's behaviour at instant ``at`` (aware): its defaults with every release in
    force applied in order (a later release overrides what an earlier one set)."""
    if at.tzinfo is None:
        raise ValueError("at must be a time-zone-aware datetime")
    at_utc = at.astimezone(UTC)
    model = scenario.frontend
    sequential, render_ms, linger_ms = model.sequential_panels, model.note_render_ms, model.spinner_linger_ms
    names: list[str] = []
    for release in model.releases:
        if release.at <= at_utc and (release.until is None or at_utc < release.until):
            names.append(release.name)
            sequential = sequential if release.sequential_panels is None else release.sequential_panels
            render_ms = render_ms if release.note_render_ms is None else release.note_render_ms
            linger_ms = linger_ms if release.spinner_linger_ms is None else release.spinner_linger_ms
    return PagePlan(sequential, render_ms, linger_ms, tuple(names))


def record_visible_s(plan: PagePlan, api_s: Mapping[str, float], notes_shown: int) -> float:
    """Seconds from opening a record until it is visible (the spinner gone).

    Args:
        plan: the page's behaviour (:func:`page_plan`).
        api_s: the API's time for the banner and each panel, in seconds, by route key
            (:data:`BANNER_ENDPOINT` and those of :data:`PANEL_ENDPOINTS`), as the page sees it
            (service and network time).
        notes_shown: how many notes the notes panel draws (at most :data:`NOTES_SHOWN_MAX`).
    """
    render_s = plan.note_render_ms * min(notes_shown, NOTES_SHOWN_MAX) / 1000.0
    panels = {panel: api_s[endpoint] for panel, endpoint in PANEL_ENDPOINTS}
    if plan.sequential_panels:
        fetched_s = sum(panels.values()) + render_s
    else:
        others = [seconds for panel, seconds in panels.items() if panel != "notes"]
        fetched_s = max([*others, panels["notes"] + render_s])
    return api_s[BANNER_ENDPOINT] + fetched_s + plan.spinner_linger_ms / 1000.0


def record_api_s(site: str | None, at: datetime, scenario: Scenario) -> dict[str, float]:
    """The modelled API time of the banner and each panel for a record opened at ``at``
    (every request taken at ``at``: exact for a scenario without load curve, jitter or periods)."""
    endpoints = (BANNER_ENDPOINT, *(endpoint for _panel, endpoint in PANEL_ENDPOINTS))
    return {endpoint: modelled_delay(endpoint, site, at, scenario).total_s for endpoint in endpoints}
