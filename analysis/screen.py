"""The lens "the API was fast, the screen was not", for browser workflows.

A browser run's step is timed until what the clinician waits for is on the screen; under it, the
page's own requests (``source`` ``page``) say how long the API took. Put side by side, for one
workflow's step over a window: the time until visible, the time the page's API calls covered
(their union: requests in flight together count once), and their sum. What the calls did not
cover is the page itself (scripts, rendering, a spinner). Around a change, the same figures
before and after say which part grew; when the page's requests stopped overlapping, the change
made the page fetch them one after another, and the sentence says so ("the record page now
fetches its five panels one after another: 5 x 180 ms instead of 180 ms").

Every figure is a median over runs (never a mean of percentiles) and carries its run count.
Story-findings attaches it to a finding as a :class:`analysis.watermelon.Lens` (:meth:`as_lens`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.store import Store
    from analysis.watermelon import Lens

__all__ = ["LENS_NAME", "TITLE", "ScreenChange", "ScreenTime", "screen_change", "screen_time"]

LENS_NAME = "api_vs_screen"
TITLE = "The API was fast, the screen was not"


@dataclass(frozen=True)
class ScreenTime:
    """One browser step's time on the screen against its page's API calls (medians over runs).

    Attributes:
        workflow: the workflow's id.
        step: the step's name.
        runs: runs whose step finished ok.
        screen_s: time until what the step waits for was visible.
        api_path_s: time covered by at least one of the page's requests during the step.
        api_sum_s: the page's requests' durations added up.
        requests: requests the page made during the step.
        concurrency: the most requests in flight at once.
        request_s: one request's duration.
        batch_s: the time the widest group of requests in flight together took, start to end.
    """

    workflow: str
    step: str
    runs: int
    screen_s: float
    api_path_s: float
    api_sum_s: float
    requests: int
    concurrency: int
    request_s: float
    batch_s: float

    @property
    def page_s(self) -> float:
        """What the API's calls do not explain: the page's own scripts, rendering and waiting."""
        return max(0.0, self.screen_s - self.api_path_s)

    @property
    def text(self) -> str:
        return (f"until {_display(self.step)} was visible: {_s(self.screen_s)}, of which the page's "
                f"{self.requests} API calls covered {_s(self.api_path_s)} (together {_s(self.api_sum_s)}) "
                f"and the page itself {_s(self.page_s)} (median of {self.runs} runs)")


@dataclass(frozen=True)
class ScreenChange:
    """The same step before and after a change, and what grew."""

    at: datetime
    before: ScreenTime
    after: ScreenTime

    @property
    def sequential(self) -> bool:
        """The page's requests overlapped before and no longer do."""
        return self.before.concurrency >= 2 and self.after.concurrency < self.before.concurrency

    @property
    def text(self) -> str:
        before, after = self.before, self.after
        sentence = (f"Until {_display(after.step)} was visible took {_s(after.screen_s)} after the change, "
                    f"{_s(before.screen_s)} before ({after.runs} and {before.runs} runs), while one API call "
                    f"took {_ms(after.request_s)} after and {_ms(before.request_s)} before")
        return sentence + (f": {self.cause}." if self.cause else ".")

    @property
    def cause(self) -> str:
        """What grew, in words: "the record page now fetches its five panels one after another:
        5 x 180 ms instead of 180 ms" (or what the page itself added); "" when the API grew."""
        before, after = self.before, self.after
        if self.sequential:
            k = before.concurrency
            return (f"the {_page(after.step)} now fetches its {_NUMBERS.get(k, str(k))} panels one after another: "
                    f"{k} x {_ms(after.request_s)} instead of {_ms(before.batch_s)}")
        if after.page_s - before.page_s > after.api_path_s - before.api_path_s:
            return f"the page itself grew from {_s(before.page_s)} to {_s(after.page_s)}"
        return ""

    def as_lens(self) -> Lens:
        """The change as a watermelon lens (for a finding's ``lenses``; its title is :data:`TITLE`)."""
        from analysis.watermelon import Lens

        return Lens(LENS_NAME, self.text, self.lens_figures)

    @property
    def lens_figures(self) -> dict[str, float]:
        """Both sides' figures: ``before_screen_s``, ``after_concurrency``, ..."""
        return {f"{side}_{name}": float(getattr(getattr(self, side), name))
                for side in ("before", "after")
                for name in ("screen_s", "api_path_s", "api_sum_s", "request_s", "batch_s", "concurrency", "runs")}


def screen_time(store: Store, workflow: str, start: datetime, end: datetime, *, step: str | None = None,
                site: str | Sequence[str] | None = None) -> ScreenTime | None:
    """The lens's figures for ``workflow`` between ``start`` and ``end`` (UTC), or None without
    browser runs there. ``step`` defaults to the step with the longest median time among those
    whose page made requests (the record opening, for a record workflow)."""
    steps = store.steps(start, end, workflow=workflow, site=site)
    requests = store.requests(start, end, workflow=workflow, site=site, source="page")
    if steps.empty or requests.empty:
        return None
    steps = steps[steps["status"] == "ok"]
    if step is None:
        with_requests = steps[steps["step"].isin(set(requests["step"]))]
        if with_requests.empty:
            return None
        step = str(with_requests.groupby("step")["duration_s"].median().idxmax())
    chosen = steps[steps["step"] == step]
    if chosen.empty:
        return None
    per_run: list[dict[str, float]] = []
    durations: list[float] = []
    for trace_id, group in requests[requests["step"] == step].groupby("trace_id"):
        if trace_id not in set(chosen["trace_id"]):
            continue
        per_run.append(_run_figures(group))
        durations.extend(group["duration_s"].tolist())
    if not per_run:
        return None

    def median(name: str) -> float:
        return statistics.median(figures[name] for figures in per_run)

    return ScreenTime(
        workflow=workflow, step=step, runs=len(chosen),
        screen_s=float(chosen["duration_s"].median()), api_path_s=median("path_s"), api_sum_s=median("sum_s"),
        requests=round(median("requests")), concurrency=round(median("concurrency")),
        request_s=statistics.median(durations), batch_s=median("batch_s"),
    )


def screen_change(store: Store, workflow: str, at: datetime, *, window: timedelta = timedelta(days=7),
                  step: str | None = None, site: str | Sequence[str] | None = None) -> ScreenChange | None:
    """The step's figures in ``window`` before ``at`` and in ``window`` from it, or None when a
    side has no browser runs."""
    after = screen_time(store, workflow, at, at + window, step=step, site=site)
    if after is None:
        return None
    before = screen_time(store, workflow, at - window, at, step=after.step, site=site)
    return None if before is None else ScreenChange(at, before, after)


def _run_figures(group: Any) -> dict[str, float]:
    """Union, sum, count, most in flight and the widest batch of one run's requests in one step."""
    first = min(group["start"])
    starts = [(moment - first).total_seconds() for moment in group["start"]]  # small numbers keep precision
    spans = sorted((begin, begin + float(duration)) for begin, duration in zip(starts, group["duration_s"], strict=True))
    path_s, reach = 0.0, float("-inf")
    for begin, finish in spans:
        if finish > reach:
            path_s += finish - max(begin, reach)
            reach = finish
    concurrency, batch_s = 1, max(finish - begin for begin, finish in spans)
    for begin, _finish in spans:
        in_flight = [(b, f) for b, f in spans if b <= begin < f]
        if len(in_flight) > concurrency:
            concurrency = len(in_flight)
            batch_s = max(f for _b, f in in_flight) - min(b for b, _f in in_flight)
    return {"path_s": path_s, "sum_s": sum(finish - begin for begin, finish in spans), "requests": len(spans),
            "concurrency": concurrency, "batch_s": batch_s}


_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
_OPENING_WORDS = ("open", "show", "load", "view")


def _page(step: str) -> str:
    """The page a step shows: "open-record" shows the record page; any other step, its own."""
    words = _display(step).split()
    if len(words) > 1 and words[0] in _OPENING_WORDS:
        return " ".join(words[1:]) + " page"
    return f"page of the {_display(step)} step"


def _display(name: str) -> str:
    return name.replace("-", " ").replace("_", " ")


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"
