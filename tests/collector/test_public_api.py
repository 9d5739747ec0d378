"""The collector's public names, pinned; and laws of its small pure parts."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

import collector
from collector.errors import ErrorType
from collector.metrics import DEFAULT_BOUNDARIES_S, bucket_boundaries_s
from collector.schedule import next_slot_index, slots_missed_while_down
from store import schema

PUBLIC = {
    "BUILTIN_VARIABLES", "PATIENT_VARIABLES", "PROBE_SERVICE_NAME", "AssertionConfig", "AuthConfig",
    "AuthError", "BasicAuthConfig", "BearerAuthConfig", "ClientFactory", "ConfigProblem", "ErrorType",
    "Job", "NoAuthConfig", "OAuth2ClientCredentialsConfig", "Probe", "ProbeClients", "ProbeMetrics",
    "RequestTiming", "RunResult", "SiteConfig", "SmartBackendServicesConfig", "StateFile", "StepConfig", "StepResult", "TargetConfig",
    "TestPatientConfig", "TlsConfig", "TokenCache", "UnknownNameError", "WorkflowConfig",
    "bucket_boundaries_s", "check_references", "make_client", "requests_per_min", "requests_per_run",
    "run_workflow", "tracer_provider_for_site",
}


def test_public_names_are_pinned_and_importable():
    assert set(collector.__all__) == PUBLIC
    assert all(getattr(collector, name) is not None for name in collector.__all__)


def test_error_types_are_the_schema_closed_set():
    assert tuple(member.value for member in ErrorType) == schema.ERROR_TYPES


# No deadline: a gap of 100,000 slots takes longer on a busy machine, and time is not what is tested.
@settings(deadline=None)
@given(
    interval_s=st.floats(min_value=0.5, max_value=3600),
    last_slot_s=st.floats(min_value=1e6, max_value=2e9),
    gap_s=st.floats(min_value=0, max_value=50_000),
)
def test_slots_missed_while_down_are_every_slot_strictly_inside_the_gap(interval_s, last_slot_s, gap_s):
    now_s = last_slot_s + gap_s
    slots = list(slots_missed_while_down(last_slot_s, now_s, interval_s))
    assert all(last_slot_s < slot < now_s for slot in slots)
    assert all(b > a for a, b in zip(slots, slots[1:]))
    expected = sum(1 for k in range(math.floor(last_slot_s / interval_s), next_slot_index(now_s, interval_s) + 1)
                   if last_slot_s < k * interval_s < now_s)
    assert len(slots) == expected


@given(st.lists(st.floats(min_value=0.001, max_value=1000), max_size=10))
def test_bucket_boundaries_include_every_threshold_in_order(thresholds_s):
    boundaries = bucket_boundaries_s(thresholds_s)
    assert set(thresholds_s) | set(DEFAULT_BOUNDARIES_S) == set(boundaries)
    assert list(boundaries) == sorted(set(boundaries))
