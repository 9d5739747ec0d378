"""Probe accuracy: the probe's step duration beside curl's ``time_total`` and the injected delay.

The testbed runs in its own process with fixed per-endpoint service times (no jitter, no load
curve): a read of each resource type waits exactly its delay. For each delay the probe (one
single-step workflow on a fresh connection, as curl makes one) and curl request the same URL with
the same bearer token, in rotating order, so the machine's noise falls on both alike. A third
contender, a plain ``httpx`` GET on a fresh client timed around the call, separates what Python's
HTTP stack costs from what Wardwatch's phase timing and spans add. A fourth, the probe with its
reads dated when they return to Python instead of by the kernel's receive timestamp, shows how
much of the difference to curl is the probe's own wake-up (curl's ``time_total`` includes curl's).
Reported per delay: the median and p99 of (probe - injected), (curl - injected) and the paired
differences (probe - curl, the probe's overhead over curl; httpx - curl; probe - httpx; the
Python-dated probe - curl). Target: median overhead <= 1 ms.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from opentelemetry.sdk.trace import TracerProvider

from benchmarks.epr import EprProcess, fetch_token, testbed_process
from benchmarks.results import Figure, Progress, median, percentile
from collector import SiteConfig, TargetConfig, WorkflowConfig, make_client, run_workflow
from testbed import scenario_for_tests

__all__ = ["DELAYS_MS", "RESOURCE_FOR_DELAY", "run"]

NAME = "accuracy"
DELAYS_MS = (0, 10, 100, 1000)
# Each delay is the service time of reads of one resource type, so one server serves them all.
_RESOURCES = ("Patient", "Encounter", "Observation", "MedicationRequest", "AllergyIntolerance")
RESOURCE_FOR_DELAY = dict(zip(DELAYS_MS, _RESOURCES, strict=False))
_ENV_TOKEN = "WARDWATCH_BENCH_TOKEN"


def _resource_id(epr: EprProcess, token: str, resource: str) -> str:
    response = httpx.get(f"{epr.fhir_url}/{resource}", params={"_count": 1},
                         headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
    response.raise_for_status()
    return str(response.json()["entry"][0]["resource"]["id"])


def _curl_s(curl: str, url: str, header_file: Path) -> float:
    done = subprocess.run(
        [curl, "-s", "-o", "/dev/null", "-H", f"@{header_file}", "-w", "%{time_total} %{http_code}", url],
        capture_output=True, text=True, check=True, timeout=60,
    )
    seconds, status = done.stdout.split()
    if status != "200":
        raise RuntimeError(f"curl got HTTP {status} from {url}")
    return float(seconds)


def _httpx_s(url: str, token: str) -> float:
    """A plain httpx GET on a fresh client (new connection), timed around the call."""
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60.0) as client:
        start = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"httpx got HTTP {response.status_code} from {url}")
    return elapsed


def run(*, repeats: int = 50, slow_repeats: int = 20, delays_ms: Sequence[int] = DELAYS_MS,
        progress: Progress = lambda _m: None) -> list[Figure]:
    """Measure probe and curl against each delay.

    Args:
        repeats: rounds (probe, curl, httpx) per delay below one second.
        slow_repeats: rounds for delays of one second or more (each takes three seconds).
        delays_ms: the injected delays; each must be a key of :data:`RESOURCE_FOR_DELAY`.
        progress: called with a short message as the benchmark goes.

    Raises:
        RuntimeError: curl is not installed, or the testbed or a request failed.
    """
    curl = shutil.which("curl")
    if curl is None:
        raise RuntimeError("curl is not installed (apt-get install curl)")
    unknown = [d for d in delays_ms if d not in RESOURCE_FOR_DELAY]
    if unknown:
        raise ValueError(f"no endpoint for delays {unknown}; choose from {list(RESOURCE_FOR_DELAY)}")
    service_ms = {f"GET /{RESOURCE_FOR_DELAY[d]}/{{id}}": float(d) for d in delays_ms}
    scenario = scenario_for_tests(0.0, service_ms=service_ms)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-") as tmp, \
            testbed_process(scenario, Path(tmp)) as epr:
        token = fetch_token(epr)
        header_file = Path(tmp) / "headers"
        header_file.write_text(f"Authorization: Bearer {token}\n", encoding="utf-8")
        header_file.chmod(0o600)
        target = TargetConfig.model_validate({"base_url": epr.fhir_url,
                                              "auth": {"type": "bearer", "token": f"${{env:{_ENV_TOKEN}}}"}})
        site = SiteConfig(name="bench", timezone="UTC")
        tracer = TracerProvider().get_tracer("wardwatch-bench")  # spans are made, not exported
        environ = {_ENV_TOKEN: token}
        rng = random.Random(7)
        for delay_ms in delays_ms:
            resource = RESOURCE_FOR_DELAY[delay_ms]
            rid = _resource_id(epr, token, resource)
            workflow = WorkflowConfig.model_validate({
                "name": f"read-{resource.lower()}", "target": "bench", "connection": "fresh",
                "steps": [{"name": "read", "path": f"/{resource}/{rid}"}],
            })
            url = f"{epr.fhir_url}/{resource}/{rid}"
            n = slow_repeats if delay_ms >= 1000 else repeats
            progress(f"accuracy: {n} rounds of probe, curl and httpx at {delay_ms} ms ({resource})")
            # one untimed warm-up of each, so imports and first connections do not count
            run_workflow(workflow, target, site, tracer=tracer, environ=environ, rng=rng)
            _curl_s(curl, url, header_file)
            _httpx_s(url, token)
            probe_s: list[float] = []
            curl_s: list[float] = []
            httpx_s: list[float] = []
            python_dated_s: list[float] = []
            orders = ((0, 1, 2, 3), (1, 2, 3, 0), (2, 3, 0, 1), (3, 0, 1, 2))
            for i in range(n):
                for which in orders[i % 4]:
                    if which in (0, 3):
                        factory = _python_dated_client if which == 3 else None
                        result = run_workflow(workflow, target, site, tracer=tracer, environ=environ, rng=rng,
                                              client_factory=factory)
                        if result.status != "ok":
                            raise RuntimeError(f"probe run failed: {result.error_type}: {result.message}")
                        (probe_s if which == 0 else python_dated_s).append(result.steps[0].duration_s)
                    elif which == 1:
                        curl_s.append(_curl_s(curl, url, header_file))
                    else:
                        httpx_s.append(_httpx_s(url, token))
            figures += _figures(delay_ms, probe_s, curl_s, httpx_s, python_dated_s)
    return figures


def _python_dated_client(target: TargetConfig, keep_alive: bool) -> httpx.Client:
    """The probe's client with reads dated when they return to Python (no kernel timestamps)."""
    return make_client(target, keep_alive, kernel_timestamps=False)


def _figures(delay_ms: int, probe_s: list[float], curl_s: list[float], httpx_s: list[float],
             python_dated_s: list[float]) -> list[Figure]:
    injected_s = delay_ms / 1000
    probe_err = [(p - injected_s) * 1000 for p in probe_s]
    curl_err = [(c - injected_s) * 1000 for c in curl_s]
    overhead = [(p - c) * 1000 for p, c in zip(probe_s, curl_s, strict=True)]
    n = len(overhead)
    at = f"@ {delay_ms} ms"
    median_overhead = median(overhead)
    return [
        Figure(NAME, f"probe - injected, median {at}", median(probe_err), "ms", n),
        Figure(NAME, f"probe - injected, p99 {at}", percentile(probe_err, 0.99), "ms", n),
        Figure(NAME, f"curl - injected, median {at}", median(curl_err), "ms", n),
        Figure(NAME, f"curl - injected, p99 {at}", percentile(curl_err, 0.99), "ms", n),
        Figure(NAME, f"probe - curl (overhead), median {at}", median_overhead, "ms", n,
               target="<= 1 ms", met=median_overhead <= 1.0,
               note="paired: each probe run beside one curl request"),
        Figure(NAME, f"probe - curl (overhead), p99 {at}", percentile(overhead, 0.99), "ms", n),
        Figure(NAME, f"httpx - curl, median {at}",
               median([(h - c) * 1000 for h, c in zip(httpx_s, curl_s, strict=True)]), "ms", n,
               note="plain httpx GET on a fresh client: Python's HTTP stack alone"),
        Figure(NAME, f"probe - httpx, median {at}",
               median([(p - h) * 1000 for p, h in zip(probe_s, httpx_s, strict=True)]), "ms", n,
               note="what Wardwatch's phase timing and spans add to httpx"),
        Figure(NAME, f"probe, reads dated in Python - curl, median {at}",
               median([(p - c) * 1000 for p, c in zip(python_dated_s, curl_s, strict=True)]), "ms", n,
               note="the probe without kernel receive timestamps: its own wake-up counted, as curl's is"),
        Figure(NAME, f"probe, reads dated in Python - curl, p99 {at}",
               percentile([(p - c) * 1000 for p, c in zip(python_dated_s, curl_s, strict=True)], 0.99), "ms", n),
        Figure(NAME, f"probe / curl, median ratio {at}",
               median(probe_s) / median(curl_s) if median(curl_s) > 0 else float("nan"), "x", n),
    ]
