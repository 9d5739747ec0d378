"""Synthetic data: deterministic, big enough, and shaped for the workflows."""

from __future__ import annotations

import base64
import json

import pytest

from testbed import MRN_SYSTEM, WARDS, generate_dataset, mrn_for
from testbed.data import _FAMILY, _GIVEN_FEMALE, _GIVEN_MALE


def test_same_seed_same_data_other_seed_other_data() -> None:
    first, again, other = generate_dataset(7), generate_dataset(7), generate_dataset(8)
    assert json.dumps(first.resources, sort_keys=True) == json.dumps(again.resources,
                                                                     sort_keys=True)
    assert json.dumps(first.resources, sort_keys=True) != json.dumps(other.resources,
                                                                     sort_keys=True)


def test_at_least_200_patients_each_with_an_mrn_and_clinical_record() -> None:
    ds = generate_dataset()
    patients = list(ds.of_type("Patient"))
    assert len(patients) >= 200
    mrns = [p["identifier"][0]["value"] for p in patients]
    assert mrns[:3] == ["MRN000001", "MRN000002", "MRN000003"]
    assert len(set(mrns)) == len(mrns)
    assert all(p["identifier"][0]["system"] == MRN_SYSTEM for p in patients)
    for patient in patients:
        pid = patient["id"]
        assert ds.for_patient("Encounter", pid)
        assert ds.for_patient("Observation", pid)
        assert ds.for_patient("DocumentReference", pid)
    assert sum(bool(ds.for_patient("MedicationRequest", p["id"])) for p in patients) > 150
    assert sum(bool(ds.for_patient("AllergyIntolerance", p["id"])) for p in patients) > 100


def test_names_are_invented() -> None:
    for patient in generate_dataset().of_type("Patient"):
        name = patient["name"][0]
        assert name["family"] in _FAMILY
        assert set(name["given"]) <= set(_GIVEN_FEMALE) | set(_GIVEN_MALE)


def test_wards_have_patients_in_progress() -> None:
    ds = generate_dataset()
    in_progress = [e for e in ds.of_type("Encounter") if e["status"] == "in-progress"]
    wards = {e["location"][0]["location"]["display"] for e in in_progress}
    assert "Ward 7" in wards
    assert wards <= {display for _, display in WARDS}
    for location_id, display in WARDS:
        assert ds.get("Location", location_id)["name"] == display


def test_vital_signs_are_loinc_coded_with_times() -> None:
    ds = generate_dataset()
    vitals = [o for o in ds.for_patient("Observation", "pat-0001")
              if o["category"][0]["coding"][0]["code"] == "vital-signs"]
    codes = {o["code"]["coding"][0]["code"] for o in vitals}
    assert {"8867-4", "9279-1", "59408-5", "8310-5", "85354-9"} <= codes
    assert all(o["code"]["coding"][0]["system"] == "http://loinc.org" for o in vitals)
    assert all(o["effectiveDateTime"].endswith("Z") for o in vitals)


def test_notes_decode_to_text() -> None:
    note = generate_dataset().for_patient("DocumentReference", "pat-0012")[0]
    text = base64.b64decode(note["content"][0]["attachment"]["data"]).decode("utf-8")
    assert mrn_for(12) in text


def test_patient_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_dataset(patients=0)
