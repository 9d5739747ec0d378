"""Month-long computations run off the request: started once per key and store version, one at a
time, with their errors kept for the page."""

from __future__ import annotations

import sys
import threading

from dashboard.jobs import Jobs

WAIT_S = 10


def test_the_same_key_and_version_is_computed_once() -> None:
    calls = []
    jobs = Jobs()
    first = jobs.start(("report", "2026-10"), ("a.parquet",), lambda: calls.append(1) or "done")
    assert first.done.wait(WAIT_S)
    again = jobs.start(("report", "2026-10"), ("a.parquet",), lambda: calls.append(2) or "again")
    assert again is first and first.result == "done" and calls == [1]
    assert jobs.get(("report", "2026-10")) is first


def test_new_spans_start_the_computation_again() -> None:
    jobs = Jobs()
    first = jobs.start("findings", ("a.parquet",), lambda: 1)
    assert first.done.wait(WAIT_S)
    second = jobs.start("findings", ("a.parquet", "b.parquet"), lambda: 2)
    assert second is not first
    assert second.done.wait(WAIT_S) and second.result == 2
    assert jobs.get("findings") is second


def test_an_error_is_kept_for_the_page_and_the_next_request_tries_again() -> None:
    jobs = Jobs()

    def fail() -> None:
        raise RuntimeError("the store moved")

    failed = jobs.start("report", None, fail)
    assert failed.done.wait(WAIT_S)
    assert isinstance(failed.error, RuntimeError) and failed.result is None
    retried = jobs.start("report", None, lambda: "built")
    assert retried is not failed
    assert retried.done.wait(WAIT_S) and retried.result == "built"


def test_jobs_run_one_at_a_time_and_a_request_never_waits_for_one() -> None:
    release = threading.Event()
    jobs = Jobs()
    slow = jobs.start("report", None, lambda: release.wait(WAIT_S))
    queued = jobs.start("findings", None, lambda: "found")  # returns at once, though the first still runs
    assert not slow.done.is_set() and not queued.done.wait(0.2)
    release.set()
    assert slow.done.wait(WAIT_S) and queued.done.wait(WAIT_S)
    assert queued.result == "found"


def test_while_a_newer_version_runs_the_last_result_is_kept_aside_for_the_page(monkeypatch) -> None:
    """The overview's findings of the previous quarter hour are shown while the next are computed,
    instead of the page waiting again; only the last good result is kept, never a chain."""
    import datetime as dt

    from dash import html

    from dashboard import DashboardContext, create_app
    from dashboard.findings import FindingsView

    jobs = Jobs()
    start, end = dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    view = FindingsView((), (), start, end, 1.0)
    first = jobs.start("findings", 1, lambda: view)
    assert first.done.wait(WAIT_S)
    release = threading.Event()
    second = jobs.start("findings", 2, lambda: release.wait(WAIT_S) and view)
    assert second.previous is first and not second.done.is_set()
    third = jobs.start("findings", 3, lambda: release.wait(WAIT_S) and view)
    assert third.previous is first and second.previous is None  # the last good one, carried on

    create_app(DashboardContext(data_dir=None))  # type: ignore[arg-type]  # pages register with an app as pages.<name>
    from dashboard.filters import Filters

    overview = sys.modules["pages.overview"]  # (importing dashboard.pages.overview would register it twice)
    findings_section = overview.findings_section

    monkeypatch.setattr(overview, "_view_section", lambda shown, *_: ["the earlier findings"] if shown is view else [])

    shown = findings_section(third, Filters(window="2026-11"), DashboardContext(data_dir=None))  # type: ignore[arg-type]
    note = shown[0]
    assert isinstance(note, html.P) and "These findings were computed 1 min ago; newer ones are being computed" in note.children
    assert shown[1:] == ["the earlier findings"]
    release.set()
    assert third.done.wait(WAIT_S)
