"""The FHIR API: shapes, search semantics, paging, create, errors and auth, over real HTTP."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from testbed import MRN_SYSTEM, TestbedServer

FHIR_JSON = "application/fhir+json"


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def _link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((lk["url"] for lk in bundle["link"] if lk["relation"] == relation), None)


def test_metadata_is_a_capability_statement_readable_without_a_token(
        testbed_server: TestbedServer) -> None:
    response = httpx.get(f"{testbed_server.fhir_url}/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == FHIR_JSON
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    types = {r["type"] for r in body["rest"][0]["resource"]}
    assert {"Patient", "Encounter", "Observation", "MedicationRequest", "AllergyIntolerance",
            "DocumentReference"} <= types
    token_url = body["rest"][0]["security"]["extension"][0]["extension"][0]["valueUri"]
    assert token_url == testbed_server.token_url


def test_read_patient(fhir: httpx.Client) -> None:
    response = fhir.get("/Patient/pat-0001")
    assert response.status_code == 200
    assert response.headers["content-type"] == FHIR_JSON
    patient = response.json()
    assert patient["resourceType"] == "Patient"
    assert patient["id"] == "pat-0001"
    assert patient["identifier"][0] == {
        "use": "usual", "type": {"text": "Medical record number"},
        "system": MRN_SYSTEM, "value": "MRN000001"}


@pytest.mark.parametrize("path", ["/Patient/pat-9999", "/Observation/nope", "/Unknown/1",
                                  "/Unknown"])
def test_unknown_ids_and_types_are_404_operation_outcomes(fhir: httpx.Client, path: str) -> None:
    response = fhir.get(path)
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == "not-found"


def test_search_by_identifier_is_an_exact_match_on_system_and_value(fhir: httpx.Client) -> None:
    bundle = fhir.get("/Patient", params={"identifier": f"{MRN_SYSTEM}|MRN000042"}).json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 1
    assert _ids(bundle) == ["pat-0042"]
    assert bundle["entry"][0]["fullUrl"].endswith("/fhir/Patient/pat-0042")
    assert bundle["entry"][0]["search"] == {"mode": "match"}
    # another system, a value prefix, or a value with different case do not match
    for query in ("https://other.example/mrn|MRN000042", f"{MRN_SYSTEM}|MRN00004",
                  f"{MRN_SYSTEM}|mrn000042"):
        assert fhir.get("/Patient", params={"identifier": query}).json()["total"] == 0
    # a value without system matches in any system
    assert _ids(fhir.get("/Patient", params={"identifier": "MRN000042"}).json()) == ["pat-0042"]


def test_search_by_name_is_a_case_insensitive_prefix_on_name_parts(fhir: httpx.Client) -> None:
    patient = fhir.get("/Patient/pat-0003").json()
    family = patient["name"][0]["family"]
    bundle = fhir.get("/Patient", params={"name": family[:4].lower(), "_count": 100}).json()
    assert bundle["total"] >= 1
    assert "pat-0003" in _ids(bundle) or bundle["total"] > 100
    for entry in bundle["entry"]:
        parts = [entry["resource"]["name"][0]["family"], *entry["resource"]["name"][0]["given"],
                 *entry["resource"]["name"][0]["text"].split()]
        assert any(p.lower().startswith(family[:4].lower()) for p in parts)
    assert fhir.get("/Patient", params={"name": "Zzzzz"}).json()["total"] == 0


def test_encounters_of_a_patient_and_the_ward_handover_list(fhir: httpx.Client) -> None:
    bundle = fhir.get("/Encounter", params={"patient": "pat-0005"}).json()
    assert bundle["total"] >= 1
    assert all(e["resource"]["subject"]["reference"] == "Patient/pat-0005"
               for e in bundle["entry"])
    ward = fhir.get("/Encounter", params={"location": "Location/ward-7", "status": "in-progress",
                                          "_count": 100}).json()
    assert ward["total"] >= 40  # every fifth of 240 patients is on Ward 7
    for entry in ward["entry"]:
        enc = entry["resource"]
        assert enc["status"] == "in-progress"
        assert enc["location"][0]["location"]["display"] == "Ward 7"
    by_display = fhir.get("/Encounter", params={"location": "Ward 7", "status": "in-progress",
                                                "_count": 100}).json()
    assert by_display["total"] == ward["total"]


def test_vital_signs_filtered_sorted_newest_first_and_counted(fhir: httpx.Client) -> None:
    everything = fhir.get("/Observation", params={"patient": "pat-0010", "_count": 100}).json()
    categories = {e["resource"]["category"][0]["coding"][0]["code"] for e in everything["entry"]}
    vitals = fhir.get("/Observation", params={
        "patient": "pat-0010", "category": "vital-signs", "_sort": "-date", "_count": 5}).json()
    assert vitals["total"] < everything["total"] or categories == {"vital-signs"}
    assert len(vitals["entry"]) == 5
    dates = [e["resource"]["effectiveDateTime"] for e in vitals["entry"]]
    assert dates == sorted(dates, reverse=True)
    for entry in vitals["entry"]:
        resource = entry["resource"]
        assert resource["category"][0]["coding"][0]["code"] == "vital-signs"
        assert resource["subject"]["reference"] == "Patient/pat-0010"
        assert resource["code"]["coding"][0]["system"] == "http://loinc.org"
    ascending = fhir.get("/Observation", params={
        "patient": "pat-0010", "category": "vital-signs", "_sort": "date", "_count": 100}).json()
    asc_dates = [e["resource"]["effectiveDateTime"] for e in ascending["entry"]]
    assert asc_dates == sorted(asc_dates)
    system_code = fhir.get("/Observation", params={
        "patient": "pat-0010",
        "category": "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
        "_count": 0}).json()
    assert system_code["total"] == vitals["total"]
    assert "entry" not in system_code or system_code["entry"] == []


@pytest.mark.parametrize("rtype", ["MedicationRequest", "AllergyIntolerance",
                                   "DocumentReference"])
def test_patient_scoped_searches(fhir: httpx.Client, rtype: str) -> None:
    seen_any = False
    for pid in ("pat-0001", "pat-0002", "pat-0003", "pat-0004", "pat-0006"):
        bundle = fhir.get(f"/{rtype}", params={"patient": pid}).json()
        assert bundle["type"] == "searchset"
        assert bundle["total"] == len(bundle["entry"] if "entry" in bundle else [])
        for entry in bundle.get("entry", []):
            ref = entry["resource"].get("subject") or entry["resource"].get("patient")
            assert ref["reference"] == f"Patient/{pid}"
            assert entry["resource"]["resourceType"] == rtype
            seen_any = True
    assert seen_any


def test_note_content_is_readable(fhir: httpx.Client) -> None:
    bundle = fhir.get("/DocumentReference", params={"patient": "pat-0007"}).json()
    note = bundle["entry"][0]["resource"]
    attachment = note["content"][0]["attachment"]
    assert attachment["contentType"].startswith("text/plain")
    text = base64.b64decode(attachment["data"]).decode("utf-8")
    assert "MRN000007" in text
    read_back = fhir.get(f"/DocumentReference/{note['id']}").json()
    assert read_back == note


def test_paging_follows_next_to_the_end_without_duplicates(fhir: httpx.Client) -> None:
    first = fhir.get("/Patient", params={"_count": 35}).json()
    total = first["total"]
    assert total >= 200
    assert _link(first, "self") is not None
    ids: list[str] = _ids(first)
    pages = 1
    url = _link(first, "next")
    while url is not None:
        page = fhir.get(url).json()
        assert page["total"] == total
        assert len(page["entry"]) <= 35
        ids.extend(_ids(page))
        url = _link(page, "next")
        pages += 1
    assert len(ids) == total
    assert len(set(ids)) == total
    assert pages == -(-total // 35)


def test_default_count_is_20_and_search_params_survive_paging(fhir: httpx.Client) -> None:
    first = fhir.get("/Observation", params={"category": "vital-signs"}).json()
    assert len(first["entry"]) == 20
    second = fhir.get(_link(first, "next")).json()
    assert second["total"] == first["total"]
    assert all(e["resource"]["category"][0]["coding"][0]["code"] == "vital-signs"
               for e in second["entry"])
    assert not set(_ids(first)) & set(_ids(second))


@pytest.mark.parametrize("params", [
    {"_count": "many"}, {"_count": "-1"}, {"_offset": "x"}, {"_sort": "-name"},
    {"identifier": ""}, {"date": "yesterday"},
])
def test_bad_search_parameter_values_are_400(fhir: httpx.Client, params: dict[str, str]) -> None:
    rtype = "/Observation" if "_sort" in params or "date" in params else "/Patient"
    response = fhir.get(rtype, params=params)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_an_unknown_search_parameter_answers_an_empty_bundle_as_lenient_servers_do(
        fhir: httpx.Client) -> None:
    """The issue's trap: ``categroy`` is not an error, it quietly matches nothing."""
    right = fhir.get("/Observation", params={"patient": "pat-0010", "category": "vital-signs"})
    typo = fhir.get("/Observation", params={"patient": "pat-0010", "categroy": "vital-signs"})
    assert right.json()["total"] > 0
    assert typo.status_code == 200
    assert typo.json()["resourceType"] == "Bundle" and typo.json()["total"] == 0
    assert typo.json().get("entry", []) == []
    strict = fhir.get("/Observation", params={"patient": "pat-0010", "categroy": "vital-signs"},
                      headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert "categroy" in strict.json()["issue"][0]["diagnostics"]
    assert fhir.get("/Patient", params={"_sort": "-date"}).status_code == 400


def test_search_by_date_with_prefixes(fhir: httpx.Client) -> None:
    every = fhir.get("/Observation", params={"patient": "pat-0010", "_sort": "date",
                                             "_count": 100}).json()
    dates = [e["resource"]["effectiveDateTime"] for e in every["entry"]]
    middle = dates[len(dates) // 2]
    later = fhir.get("/Observation", params={"patient": "pat-0010", "date": f"gt{middle}",
                                             "_count": 100}).json()
    assert later["total"] == sum(d > middle for d in dates)
    at = fhir.get("/Observation", params={"patient": "pat-0010", "date": middle}).json()
    assert at["total"] == dates.count(middle) >= 1
    window = fhir.get("/Observation", params=[("patient", "pat-0010"), ("date", f"ge{dates[0]}"),
                                              ("date", f"le{middle}"), ("_count", "100")]).json()
    assert window["total"] == sum(d <= middle for d in dates)


def test_the_capability_statement_declares_interactions_and_search_parameters(
        testbed_server: TestbedServer) -> None:
    body = httpx.get(f"{testbed_server.fhir_url}/metadata").json()
    declared = {r["type"]: r for r in body["rest"][0]["resource"]}
    observation = declared["Observation"]
    assert {i["code"] for i in observation["interaction"]} == {"read", "search-type", "create",
                                                                "delete"}
    assert {"patient", "category", "code", "date", "_id"} <= {p["name"] for p in
                                                              observation["searchParam"]}
    assert "categroy" not in {p["name"] for p in observation["searchParam"]}
    assert {i["code"] for i in declared["Patient"]["interaction"]} == {"read", "search-type"}


def test_smart_configuration_names_the_token_endpoint(testbed_server: TestbedServer) -> None:
    response = httpx.get(f"{testbed_server.fhir_url}/.well-known/smart-configuration")
    assert response.status_code == 200
    body = response.json()
    assert body["token_endpoint"] == testbed_server.token_url
    assert "private_key_jwt" in body["token_endpoint_auth_methods_supported"]
    assert {"RS384", "ES384"} <= set(body["token_endpoint_auth_signing_alg_values_supported"])


def test_delete_observation_removes_it_from_reads_and_searches(fhir: httpx.Client) -> None:
    created = fhir.post("/Observation", json=_observation("Patient/pat-0012")).json()
    newest = {"patient": "pat-0012", "_sort": "-date", "_count": 1}
    assert _ids(fhir.get("/Observation", params=newest).json()) == [created["id"]]
    before = fhir.get("/Observation", params={"patient": "pat-0012", "_count": 0}).json()["total"]
    deleted = fhir.delete(f"/Observation/{created['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["resourceType"] == "OperationOutcome"
    assert fhir.get(f"/Observation/{created['id']}").status_code == 410
    assert fhir.delete(f"/Observation/{created['id']}").status_code == 410
    assert fhir.delete("/Observation/never-was").status_code == 404
    assert fhir.delete("/Patient/pat-0012").status_code == 405
    after = fhir.get("/Observation", params={"patient": "pat-0012", "_count": 0}).json()["total"]
    assert after == before - 1
    assert created["id"] not in _ids(fhir.get("/Observation", params=newest).json())


def test_delete_needs_a_token(testbed_server: TestbedServer) -> None:
    assert httpx.delete(f"{testbed_server.fhir_url}/Observation/x").status_code == 401


def _observation(subject: str = "Patient/pat-0009") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                             "display": "Heart rate"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": "2099-01-01T00:00:00Z",
        "valueQuantity": {"value": 72, "unit": "beats/minute", "system":
                          "http://unitsofmeasure.org", "code": "/min"},
    }


def test_create_observation_201_location_and_read_back(fhir: httpx.Client) -> None:
    response = fhir.post("/Observation", json=_observation(),
                         headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 201
    created = response.json()
    location = response.headers["location"]
    assert location.endswith(f"/fhir/Observation/{created['id']}/_history/1")
    read_back = fhir.get(f"/Observation/{created['id']}")
    assert read_back.status_code == 200
    assert read_back.json() == created
    assert read_back.json()["valueQuantity"]["value"] == 72
    newest = fhir.get("/Observation", params={"patient": "pat-0009", "_sort": "-date",
                                              "_count": 1}).json()
    assert _ids(newest) == [created["id"]]


@pytest.mark.parametrize(("body", "status"), [
    ({"resourceType": "Patient"}, 400),
    ({**_observation(), "status": "bogus"}, 400),
    ({k: v for k, v in _observation().items() if k != "code"}, 400),
    (_observation(subject="Patient/pat-9999"), 422),
])
def test_create_observation_rejects_invalid_bodies(fhir: httpx.Client, body: dict[str, Any],
                                                   status: int) -> None:
    response = fhir.post("/Observation", json=body)
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"


def test_create_with_broken_json_is_400(fhir: httpx.Client) -> None:
    response = fhir.post("/Observation", content=b"{not json",
                         headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 400


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic abc", "Bearer"])
def test_fhir_without_a_valid_token_is_401(testbed_server: TestbedServer,
                                           authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{testbed_server.fhir_url}/Patient/pat-0001", headers=headers)
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == "login"
    assert "bearer" in response.headers["www-authenticate"].lower()


def test_token_endpoint_form_and_basic_auth(testbed_server: TestbedServer) -> None:
    form = {"grant_type": "client_credentials", "client_id": "wardwatch-probe",
            "client_secret": "testbed-demo-secret"}
    response = httpx.post(testbed_server.token_url, data=form)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert response.headers["cache-control"] == "no-store"
    via_basic = httpx.post(testbed_server.token_url, data={"grant_type": "client_credentials"},
                           auth=("wardwatch-probe", "testbed-demo-secret"))
    assert via_basic.status_code == 200
    for token in (body["access_token"], via_basic.json()["access_token"]):
        read = httpx.get(f"{testbed_server.fhir_url}/Patient/pat-0001",
                         headers={"Authorization": f"Bearer {token}"})
        assert read.status_code == 200


@pytest.mark.parametrize(("form", "auth", "status", "error"), [
    ({"grant_type": "client_credentials", "client_id": "wardwatch-probe",
      "client_secret": "wrong"}, None, 401, "invalid_client"),
    ({"grant_type": "client_credentials", "client_id": "someone",
      "client_secret": "testbed-demo-secret"}, None, 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, ("wardwatch-probe", "nope"), 401, "invalid_client"),
    ({"grant_type": "password", "client_id": "wardwatch-probe",
      "client_secret": "testbed-demo-secret"}, None, 400, "unsupported_grant_type"),
    ({"client_id": "wardwatch-probe", "client_secret": "testbed-demo-secret"}, None, 400,
     "invalid_request"),
    ({"grant_type": "client_credentials", "client_id": "wardwatch-probe",
      "client_secret": "geheimnis-\u00fc\u2603"}, None, 401, "invalid_client"),
])
def test_token_endpoint_rejects_bad_requests(testbed_server: TestbedServer, form: dict[str, str],
                                             auth: tuple[str, str] | None, status: int,
                                             error: str) -> None:
    response = httpx.post(testbed_server.token_url, data=form, auth=auth)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert "access_token" not in response.json()


def test_unknown_path_is_a_404_operation_outcome(testbed_server: TestbedServer) -> None:
    response = httpx.get(f"{testbed_server.base_url}/nothing/here")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_sort_by_date_compares_instants_not_strings(fhir: httpx.Client) -> None:
    """A charted observation written with an offset and fractions still sorts by its instant."""
    latest = fhir.get("/Observation", params={"patient": "pat-0011", "_sort": "-date",
                                              "_count": 1}).json()["entry"][0]["resource"]
    newest_s = latest["effectiveDateTime"]  # e.g. 2026-11-02T05:31:00Z
    # one second later, written at -05:00: lexically smaller, in time later
    later = datetime.fromisoformat(newest_s).astimezone(timezone(timedelta(hours=-5)))
    later += timedelta(seconds=1, microseconds=5)
    body = {**_observation("Patient/pat-0011"), "effectiveDateTime": later.isoformat()}
    assert body["effectiveDateTime"] < newest_s
    created = fhir.post("/Observation", json=body).json()
    top = fhir.get("/Observation", params={"patient": "pat-0011", "_sort": "-date",
                                           "_count": 2}).json()
    assert _ids(top) == [created["id"], latest["id"]]
