"""Route keys and URL templates: what the model, the faults and the spans call a request."""

from __future__ import annotations

import pytest

from testbed import route_for


@pytest.mark.parametrize(("method", "path", "key", "template"), [
    ("GET", "/fhir/Patient/pat-0001", "GET /Patient/{id}", "/fhir/Patient/{id}"),
    ("GET", "/fhir/Patient", "GET /Patient", "/fhir/Patient"),
    ("POST", "/fhir/Observation", "POST /Observation", "/fhir/Observation"),
    ("GET", "/fhir/metadata", "GET /metadata", "/fhir/metadata"),
    ("POST", "/auth/token", "POST /auth/token", "/auth/token"),
    # a probe's URL template maps onto the same key (for simulating history from spans)
    ("GET", "/fhir/Patient/{patient_id}", "GET /Patient/{id}", "/fhir/Patient/{id}"),
    ("GET", "/fhir/Nonsense/1", None, None),
    ("GET", "/admin/faults", None, "/admin/faults"),
    ("GET", "/elsewhere", None, None),
])
def test_route_keys(method: str, path: str, key: str | None, template: str | None) -> None:
    route = route_for(method, path)
    assert (route.key, route.template) == (key, template)
