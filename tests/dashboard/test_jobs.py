"""Month-long computations run off the request: started once per key and store version, one at a
time, with their errors kept for the page."""

from __future__ import annotations

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
