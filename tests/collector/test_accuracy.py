"""Measured step durations against the testbed's modelled delays (its ground truth).

The testbed holds each response until its modelled delay has passed and reports that delay in
``X-Wardwatch-Modelled-Delay-Ms``. The testbed runs in its own process, as an EPR does. Over 50
runs from two sites: the issue's criterion (the median of measured - modelled within 2 ms + 2%
for every step); no request is measured shorter than the server waited; the phases of every
request add up to its total; and differences (between steps, between sites) match the model's.

A machine shared with other work only ever adds time (a process waiting for a core), never
removes it: a probe that adds its own milliseconds misses the criterion in every set of 50 runs,
while a burst of load spoils one set. So the criterion is checked on up to three sets of 50
runs, and the first that meets it counts; the message of a failure lists every set's medians.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks import epr
from collector.auth import TokenCache
from collector.client import ProbeClients
from collector.config import TargetConfig
from testbed.scenario import scenario_for_tests

RUNS = 50
MODELLED_HEADER = "x-wardwatch-modelled-delay-ms"


@pytest.fixture(scope="module")
def separate_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeparateTestbed]:
    """The testbed in its own process, as an EPR is: the probe's measurements share no interpreter
    (and no GIL) with the server. In a session of its own, with a server's scheduling weight
    where permitted (:func:`testbed.server.prioritise_session`): on a machine shared with other
    work, the ground truth keeps its time. The probe runs as any process does. Yields its base
    URL; stops it afterwards."""
    scenario = scenario_for_tests(
        5.0,
        service_ms={"GET /Patient": 5.0, "GET /Patient/{id}": 15.0, "GET /Encounter": 30.0},
        network_ms={"community-hospital": 10.0},
    )
    with epr.testbed_process(scenario, tmp_path_factory.mktemp("accuracy"), startup_timeout_s=30) as server:
        yield SeparateTestbed(server.base_url, _prioritised(server.pid))


@dataclass(frozen=True)
class SeparateTestbed:
    """The testbed's base URL, and whether it got a server's scheduling weight."""

    base_url: str
    prioritised: bool


def _prioritised(pid: int) -> bool:
    """The process's autogroup has a raised weight (``/proc/PID/autogroup`` reads ``... nice -10``)."""
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text(encoding="ascii")
    except OSError:
        return False
    return "nice -" in text


class RecordingFactory:
    """The probe's own client, plus a response hook that keeps the modelled delay of each response."""

    def __init__(self) -> None:
        self.modelled_ms: list[float] = []
        self._clients = ProbeClients()

    def __call__(self, target: TargetConfig, keep_alive: bool) -> httpx.Client:
        client = self._clients(target, keep_alive)
        client.event_hooks["response"] = [self._keep]
        return client

    def _keep(self, response: httpx.Response) -> None:
        if response.request.url.path.startswith("/fhir"):
            self.modelled_ms.append(float(response.headers[MODELLED_HEADER]))


SITES = ("ward-7", "community-hospital")


def measure(example: Any, tracer: Any) -> dict[str, tuple[dict[str, list[float]], dict[str, list[float]]]]:
    """50 runs from each site, alternating sites so that the machine's load drifts alike for both,
    of find-patient, read-patient, encounters: measured and modelled seconds, by site and step.
    The first request of a run opens its connection; the others reuse it."""
    base = example.workflows["open-patient-record"]
    workflow = base.model_copy(update={"steps": base.steps[:3], "think_time_s": 0.0, "connection": "reuse"})
    factory = RecordingFactory()
    cache = TokenCache()
    found = {site: ({s.name: [] for s in workflow.steps}, {s.name: [] for s in workflow.steps}) for site in SITES}
    for _ in range(RUNS):
        for site in SITES:
            measured, modelled = found[site]
            before = len(factory.modelled_ms)
            result = example.run(workflow, tracer, site=site, token_cache=cache, client_factory=factory)
            assert result.status == "ok", result.message
            delays_ms = factory.modelled_ms[before:]
            assert len(delays_ms) == len(result.steps)
            for step, delay_ms in zip(result.steps, delays_ms):
                (request,) = step.requests
                assert request.total_ns == request.dns_ns + request.connect_ns + request.tls_ns + request.ttfb_ns + request.transfer_ns
                assert step.duration_s == pytest.approx(request.total_s)
                measured[step.name].append(step.duration_s)
                modelled[step.name].append(delay_ms / 1000)
    return found


SETS = 3


def tolerance_s(modelled_s: float) -> float:
    """The issue's bound: 2 ms + 2%."""
    return 0.002 + 0.02 * modelled_s


def sanity_tolerance_s(modelled_s: float) -> float:
    """A bound that survives a busy machine and still catches a lost or doubled delay."""
    return 0.005 + 0.05 * modelled_s


class MeasuredSets:
    """Sets of 50 runs from each site, measured on demand (the first for every test here)."""

    def __init__(self, example: Any, *, prioritised: bool) -> None:
        from opentelemetry.sdk.trace import TracerProvider

        self._example = example
        self._tracer = TracerProvider().get_tracer("accuracy")
        self._sets: list[dict[str, Any]] = []
        self.load_averages: list[float] = []
        self.prioritised = prioritised

    def get(self, index: int) -> dict[str, Any]:
        while len(self._sets) <= index:
            self._sets.append(measure(self._example, self._tracer))
            self.load_averages.append(os.getloadavg()[0])
        return self._sets[index]


@pytest.fixture(scope="module")
def measured_sets(separate_testbed: SeparateTestbed, example_factory: Any) -> MeasuredSets:
    return MeasuredSets(example_factory(separate_testbed.base_url), prioritised=separate_testbed.prioritised)


@pytest.fixture(scope="module")
def measurements(measured_sets: MeasuredSets) -> dict[str, Any]:
    return measured_sets.get(0)


def median_errors_s(measured: dict[str, list[float]], modelled: dict[str, list[float]]) -> dict[str, float]:
    """Per step: the median of (measured - modelled), seconds."""
    return {
        name: statistics.median(m - d for m, d in zip(measured[name], modelled[name], strict=True)) for name in measured
    }


@pytest.mark.slow
@pytest.mark.parametrize("site", SITES)
def test_median_step_duration_matches_the_modelled_delay(measured_sets, site):
    """The issue's criterion, for every step: |median(measured - modelled)| <= 2 ms + 2% of the
    modelled delay, in the first of up to three sets of 50 runs that meets it (see the module's
    docstring for why a set spoiled by the machine's other work may be measured again)."""
    seen = []
    for index in range(SETS):
        measured, modelled = measured_sets.get(index)[site]
        errors = median_errors_s(measured, modelled)
        misses = {name: e for name, e in errors.items() if abs(e) > tolerance_s(modelled[name][0])}
        seen.append(
            f"set {index + 1} (load {measured_sets.load_averages[index]:.1f}): "
            + ", ".join(f"{name} {e * 1000:+.2f} ms (bound {tolerance_s(modelled[name][0]) * 1000:.2f})" for name, e in errors.items())
        )
        if not misses:
            return
    weight = (
        "with a server's scheduling weight"
        if measured_sets.prioritised
        else "WITHOUT a server's scheduling weight (not permitted here: the testbed's own wake-ups count)"
    )
    pytest.fail(f"{site}: the median error exceeds 2 ms + 2% in every set; testbed {weight}:\n" + "\n".join(seen))


@pytest.mark.parametrize("site", ["ward-7", "community-hospital"])
def test_no_request_is_measured_shorter_than_the_server_waited(measurements, site):
    measured, modelled = measurements[site]
    for name in measured:
        assert all(m >= d for m, d in zip(measured[name], modelled[name])), name


@pytest.mark.parametrize("site", ["ward-7", "community-hospital"])
def test_differences_between_steps_match_the_model(measurements, site):
    """What the environment adds to every request cancels out in a difference; the model's does
    not. Both steps run on the run's already open connection. A busy machine only ever adds time,
    so the fastest of 50 requests is each step's least disturbed measurement: compare those."""
    measured, modelled = measurements[site]
    expected_s = modelled["encounters"][0] - modelled["read-patient"][0]
    assert expected_s == pytest.approx(0.015)
    observed_s = min(measured["encounters"]) - min(measured["read-patient"])
    assert abs(observed_s - expected_s) <= sanity_tolerance_s(expected_s), f"{observed_s * 1000:.2f} ms"


def test_difference_between_sites_matches_the_modelled_network_delay(measurements):
    near_measured, near_modelled = measurements["ward-7"]
    far_measured, far_modelled = measurements["community-hospital"]
    for name in ("read-patient", "encounters"):  # on the run's open connection
        expected_s = far_modelled[name][0] - near_modelled[name][0]
        assert expected_s == pytest.approx(0.010)
        observed_s = min(far_measured[name]) - min(near_measured[name])  # least disturbed, as above
        assert abs(observed_s - expected_s) <= sanity_tolerance_s(expected_s), f"{name}: {observed_s * 1000:.2f} ms"
