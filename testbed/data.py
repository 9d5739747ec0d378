"""Deterministic synthetic FHIR R4 data for the testbed EPR.

Everything is generated from one seed by :func:`generate_dataset`; the same seed always yields the
same resources (ids, names, values, dates), so tests and workflows can name test patients by MRN.
Names are assembled from invented surnames and common given names: no real person is described.

Dates are anchored at :data:`DATA_ANCHOR` (a fixed instant, not "now"), so the data never depends on
when it is generated.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = [
    "DATA_ANCHOR",
    "DEFAULT_PATIENT_COUNT",
    "DEFAULT_SEED",
    "MRN_SYSTEM",
    "RESOURCE_TYPES",
    "WARDS",
    "Dataset",
    "generate_dataset",
    "mrn_for",
]

Resource = dict[str, Any]

DEFAULT_SEED = 7
DEFAULT_PATIENT_COUNT = 240
MRN_SYSTEM = "https://testbed.wardwatch.example/mrn"
CODE_SYSTEM_BASE = "https://testbed.wardwatch.example/CodeSystem"
DATA_ANCHOR = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

RESOURCE_TYPES = (
    "Patient",
    "Location",
    "Encounter",
    "Observation",
    "MedicationRequest",
    "AllergyIntolerance",
    "DocumentReference",
)

# (location id, display name); encounters in progress are spread over these wards.
WARDS: tuple[tuple[str, str], ...] = (
    ("ward-7", "Ward 7"),
    ("ward-3", "Ward 3"),
    ("ward-12", "Ward 12"),
    ("amu", "Acute Medical Unit"),
)
_CLINIC = ("outpatient-clinic", "Outpatient Clinic")
_COMMUNITY = ("community-hospital", "Community Hospital Day Unit")

_GIVEN_FEMALE = (
    "Amara", "Bethan", "Carys", "Delyth", "Eloise", "Freya", "Gwen", "Hana", "Isla", "Jolene",
    "Keira", "Lowri", "Maren", "Nia", "Orla", "Priya", "Rhian", "Saoirse", "Tamsin", "Wren",
)
_GIVEN_MALE = (
    "Alun", "Bram", "Cai", "Dario", "Emrys", "Fenn", "Gareth", "Hamish", "Idris", "Jago",
    "Kit", "Lorcan", "Mabon", "Niall", "Osian", "Pryce", "Rhodri", "Sol", "Tomos", "Wynn",
)
# Invented surnames (compounds of place-like syllables), chosen not to name anyone real.
_FAMILY = (
    "Ashcombe-Vale", "Brackenridge", "Cindermoor", "Dunhallow", "Elderwick", "Fernshaw",
    "Glimmerton", "Harrowgate-Lyle", "Ivybridge-Cole", "Juniperdale", "Kestrelmoor", "Larkspire",
    "Marlowbeck", "Nettlefold", "Oakenshaw-Pryde", "Pebblethwaite", "Quillbrook", "Rookhaven",
    "Saltmarsh-Orr", "Thistlecombe", "Umberleigh-Fox", "Vellacott-Rhys", "Willowmere",
    "Yarrowfield", "Zennorwick", "Amberclough", "Brindlecote", "Copperwain", "Drystone-Hale",
    "Emberlin",
)

# (LOINC code, display, unit, UCUM code, low, high, decimals)
_VITALS = (
    ("8867-4", "Heart rate", "beats/minute", "/min", 52, 118, 0),
    ("9279-1", "Respiratory rate", "breaths/minute", "/min", 11, 26, 0),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%", 89, 100, 0),
    ("8310-5", "Body temperature", "Cel", "Cel", 35.8, 38.9, 1),
)
_BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
_SYSTOLIC = ("8480-6", "Systolic blood pressure")
_DIASTOLIC = ("8462-4", "Diastolic blood pressure")
_LABS = (
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "g/dL", 8.5, 16.5, 1),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", 3.1, 5.6, 1),
)

_MEDICATIONS = (
    ("paracetamol-500", "Paracetamol 500 mg tablets", "1 g four times daily when required"),
    ("amoxicillin-500", "Amoxicillin 500 mg capsules", "500 mg three times daily"),
    ("ramipril-5", "Ramipril 5 mg capsules", "5 mg once daily"),
    ("atorvastatin-20", "Atorvastatin 20 mg tablets", "20 mg at night"),
    ("metformin-500", "Metformin 500 mg tablets", "500 mg twice daily with food"),
    ("enoxaparin-40", "Enoxaparin 40 mg injection", "40 mg subcutaneously once daily"),
    ("omeprazole-20", "Omeprazole 20 mg capsules", "20 mg once daily"),
    ("furosemide-40", "Furosemide 40 mg tablets", "40 mg each morning"),
    ("amlodipine-5", "Amlodipine 5 mg tablets", "5 mg once daily"),
    ("salbutamol-100", "Salbutamol 100 micrograms inhaler", "2 puffs when required"),
)
_ALLERGENS = (
    ("penicillin", "Penicillin", "medication", "Rash"),
    ("peanut", "Peanut", "food", "Anaphylaxis"),
    ("latex", "Latex", "environment", "Urticaria"),
    ("codeine", "Codeine", "medication", "Nausea and vomiting"),
    ("elastoplast", "Adhesive dressing", "environment", "Skin irritation"),
    ("shellfish", "Shellfish", "food", "Angioedema"),
)
_NOTE_TYPES = (
    ("11506-3", "Progress note"),
    ("34117-2", "History and physical note"),
    ("18842-5", "Discharge summary"),
)
_NOTE_LINES = (
    "Reviewed on the ward round. Comfortable at rest, eating and drinking.",
    "Observations stable overnight. No new concerns raised by nursing staff.",
    "Mobilising with the physiotherapist; plan to review walking aids tomorrow.",
    "Bloods reviewed; potassium within range. Continue current medication.",
    "Family updated by telephone. Discharge planning discussed with the patient.",
    "Mild pain controlled with regular paracetamol. Wound clean and dry.",
    "Seen in clinic. Symptoms improving since the last appointment.",
    "Plan: repeat observations four-hourly, review results on the next round.",
)


def mrn_for(number: int) -> str:
    """The MRN of the ``number``-th patient (1-based): ``MRN000001``."""
    return f"MRN{number:06d}"


def _instant(moment: datetime) -> str:
    """FHIR instant in UTC with a ``Z`` suffix (sorts lexically in time order)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Dataset:
    """All synthetic resources, by type and id, with a per-patient index.

    ``resources[type][id]`` is the resource; ``by_patient[type][patient_id]`` lists the ids of that
    type whose subject/patient is the patient, in generation order. The dataset is built once per
    app; resources created at run time are added through :meth:`add`.
    """

    seed: int
    resources: dict[str, dict[str, Resource]] = field(
        default_factory=lambda: {t: {} for t in RESOURCE_TYPES}
    )
    by_patient: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: {t: {} for t in RESOURCE_TYPES}
    )

    def add(self, resource: Resource, patient_id: str | None = None) -> None:
        """Store ``resource`` (its ``resourceType`` and ``id`` must be set) and index it."""
        rtype = resource["resourceType"]
        self.resources[rtype][resource["id"]] = resource
        if patient_id is not None:
            self.by_patient[rtype].setdefault(patient_id, []).append(resource["id"])

    def remove(self, rtype: str, rid: str) -> Resource | None:
        """Delete the resource of type ``rtype`` with id ``rid`` (and its index entry); the
        removed resource, or None when there was none."""
        resource = self.resources.get(rtype, {}).pop(rid, None)
        if resource is not None:
            for ids in self.by_patient.get(rtype, {}).values():
                if rid in ids:
                    ids.remove(rid)
                    break
        return resource

    def get(self, rtype: str, rid: str) -> Resource | None:
        """The resource of type ``rtype`` with id ``rid``, or None."""
        return self.resources.get(rtype, {}).get(rid)

    def of_type(self, rtype: str) -> Iterator[Resource]:
        """All resources of ``rtype``, in insertion order."""
        return iter(self.resources.get(rtype, {}).values())

    def for_patient(self, rtype: str, patient_id: str) -> list[Resource]:
        """The resources of ``rtype`` belonging to ``patient_id``, in insertion order."""
        ids = self.by_patient.get(rtype, {}).get(patient_id, [])
        return [self.resources[rtype][i] for i in ids]

    def counts(self) -> dict[str, int]:
        """Number of resources per type."""
        return {t: len(v) for t, v in self.resources.items()}


def _ref(rtype: str, rid: str, display: str | None = None) -> dict[str, str]:
    out = {"reference": f"{rtype}/{rid}"}
    if display is not None:
        out["display"] = display
    return out


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": OBS_CATEGORY, "code": code, "display": display}]}]


def _value(rng: random.Random, low: float, high: float, decimals: int) -> float | int:
    raw = rng.uniform(low, high)
    return round(raw) if decimals == 0 else round(raw, decimals)


def generate_dataset(seed: int = DEFAULT_SEED, patients: int = DEFAULT_PATIENT_COUNT) -> Dataset:
    """Generate the synthetic EPR contents deterministically from ``seed``.

    Args:
        seed: the random seed; the same seed gives identical resources.
        patients: how many patients (at least 1); each has MRN ``MRN000001``... in order.

    Returns:
        A :class:`Dataset`. Patient ids are ``pat-0001``...; roughly a third of the patients have an
        in-progress inpatient Encounter on one of :data:`WARDS` (Ward 7 always has some).
    """
    if patients < 1:
        raise ValueError(f"patients must be at least 1, got {patients}")
    rng = random.Random(seed)
    ds = Dataset(seed=seed)
    for loc_id, name in (*WARDS, _CLINIC, _COMMUNITY):
        ds.add({
            "resourceType": "Location",
            "id": loc_id,
            "status": "active",
            "name": name,
            "mode": "instance",
        })
    counters = {t: 0 for t in RESOURCE_TYPES}

    def next_id(rtype: str, prefix: str) -> str:
        counters[rtype] += 1
        return f"{prefix}-{counters[rtype]:05d}"

    for number in range(1, patients + 1):
        pid = f"pat-{number:04d}"
        female = rng.random() < 0.5
        given = rng.choice(_GIVEN_FEMALE if female else _GIVEN_MALE)
        middle = rng.choice(_GIVEN_FEMALE if female else _GIVEN_MALE)
        family = rng.choice(_FAMILY)
        birth = date(1932, 1, 1) + timedelta(days=rng.randrange(0, 365 * 88))
        ds.add({
            "resourceType": "Patient",
            "id": pid,
            "meta": {"lastUpdated": _instant(DATA_ANCHOR - timedelta(days=30))},
            "identifier": [{
                "use": "usual",
                "type": {"text": "Medical record number"},
                "system": MRN_SYSTEM,
                "value": mrn_for(number),
            }],
            "active": True,
            "name": [{
                "use": "official",
                "text": f"{given} {middle} {family}",
                "family": family,
                "given": [given, middle],
            }],
            "gender": "female" if female else "male",
            "birthDate": birth.isoformat(),
        }, pid)
        display = f"{given} {family}"

        # Encounters: some past outpatient/community visits; about a third in progress on a ward
        # (every fifth patient is on Ward 7 so the handover list is never empty).
        inpatient_ward: tuple[str, str] | None = None
        if number % 5 == 0:
            inpatient_ward = WARDS[0]
        elif rng.random() < 0.2:
            inpatient_ward = rng.choice(WARDS[1:])
        encounter_ids: list[str] = []
        for _ in range(rng.randint(1, 3)):
            start = DATA_ANCHOR - timedelta(days=rng.randint(20, 400), hours=rng.randint(0, 8))
            loc = rng.choice((_CLINIC, _COMMUNITY))
            eid = next_id("Encounter", "enc")
            encounter_ids.append(eid)
            ds.add({
                "resourceType": "Encounter",
                "id": eid,
                "status": "finished",
                "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
                "subject": _ref("Patient", pid, display),
                "period": {"start": _instant(start),
                           "end": _instant(start + timedelta(minutes=rng.randint(15, 90)))},
                "location": [{"location": _ref("Location", loc[0], loc[1]),
                              "status": "completed"}],
            }, pid)
        if inpatient_ward is not None:
            eid = next_id("Encounter", "enc")
            encounter_ids.append(eid)
            start = DATA_ANCHOR - timedelta(days=rng.randint(0, 9), hours=rng.randint(0, 20))
            ds.add({
                "resourceType": "Encounter",
                "id": eid,
                "status": "in-progress",
                "class": {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
                "subject": _ref("Patient", pid, display),
                "period": {"start": _instant(start)},
                "location": [{"location": _ref("Location", inpatient_ward[0], inpatient_ward[1]),
                              "status": "active"}],
            }, pid)
        latest_encounter = encounter_ids[-1]

        # Vital signs: 3-7 sets, one Observation per measurement, hours apart.
        for set_index in range(rng.randint(3, 7)):
            taken = DATA_ANCHOR - timedelta(hours=6 * set_index + rng.randint(0, 5),
                                            minutes=rng.randint(0, 59))
            for code, text, unit, ucum, low, high, decimals in _VITALS:
                oid = next_id("Observation", "obs")
                ds.add({
                    "resourceType": "Observation",
                    "id": oid,
                    "status": "final",
                    "category": _category("vital-signs", "Vital Signs"),
                    "code": {"coding": [{"system": LOINC, "code": code, "display": text}],
                             "text": text},
                    "subject": _ref("Patient", pid),
                    "encounter": _ref("Encounter", latest_encounter),
                    "effectiveDateTime": _instant(taken),
                    "valueQuantity": _quantity(_value(rng, low, high, decimals), unit, ucum),
                }, pid)
            oid = next_id("Observation", "obs")
            ds.add({
                "resourceType": "Observation",
                "id": oid,
                "status": "final",
                "category": _category("vital-signs", "Vital Signs"),
                "code": {"coding": [{"system": LOINC, "code": _BP_PANEL[0],
                                     "display": _BP_PANEL[1]}], "text": "Blood pressure"},
                "subject": _ref("Patient", pid),
                "encounter": _ref("Encounter", latest_encounter),
                "effectiveDateTime": _instant(taken),
                "component": [
                    {"code": {"coding": [{"system": LOINC, "code": _SYSTOLIC[0],
                                          "display": _SYSTOLIC[1]}]},
                     "valueQuantity": _quantity(rng.randint(95, 175), "mmHg", "mm[Hg]")},
                    {"code": {"coding": [{"system": LOINC, "code": _DIASTOLIC[0],
                                          "display": _DIASTOLIC[1]}]},
                     "valueQuantity": _quantity(rng.randint(55, 100), "mmHg", "mm[Hg]")},
                ],
            }, pid)
        # A few laboratory results, so the category filter has something to exclude.
        for code, text, unit, ucum, low, high, decimals in _LABS:
            if rng.random() < 0.7:
                taken = DATA_ANCHOR - timedelta(days=rng.randint(0, 14), hours=rng.randint(0, 23))
                oid = next_id("Observation", "obs")
                ds.add({
                    "resourceType": "Observation",
                    "id": oid,
                    "status": "final",
                    "category": _category("laboratory", "Laboratory"),
                    "code": {"coding": [{"system": LOINC, "code": code, "display": text}],
                             "text": text},
                    "subject": _ref("Patient", pid),
                    "effectiveDateTime": _instant(taken),
                    "valueQuantity": _quantity(_value(rng, low, high, decimals), unit, ucum),
                }, pid)

        for med_code, med_text, dosage in rng.sample(_MEDICATIONS, rng.randint(0, 5)):
            mid = next_id("MedicationRequest", "medrx")
            ds.add({
                "resourceType": "MedicationRequest",
                "id": mid,
                "status": rng.choice(("active", "active", "active", "completed")),
                "intent": "order",
                "medicationCodeableConcept": {
                    "coding": [{"system": f"{CODE_SYSTEM_BASE}/medication", "code": med_code,
                                "display": med_text}],
                    "text": med_text,
                },
                "subject": _ref("Patient", pid),
                "authoredOn": _instant(DATA_ANCHOR - timedelta(days=rng.randint(1, 120))),
                "dosageInstruction": [{"text": dosage}],
            }, pid)

        for a_code, a_text, a_category, reaction in rng.sample(_ALLERGENS, rng.randint(0, 3)):
            aid = next_id("AllergyIntolerance", "allergy")
            ds.add({
                "resourceType": "AllergyIntolerance",
                "id": aid,
                "clinicalStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active"}]},
                "verificationStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/"
                              "allergyintolerance-verification",
                    "code": "confirmed"}]},
                "category": [a_category],
                "criticality": rng.choice(("low", "high")),
                "code": {"coding": [{"system": f"{CODE_SYSTEM_BASE}/allergen", "code": a_code,
                                     "display": a_text}], "text": a_text},
                "patient": _ref("Patient", pid),
                "recordedDate": _instant(DATA_ANCHOR - timedelta(days=rng.randint(30, 900))),
                "reaction": [{"manifestation": [{"text": reaction}]}],
            }, pid)

        for note_index in range(rng.randint(1, 4)):
            n_code, n_text = rng.choice(_NOTE_TYPES)
            written = DATA_ANCHOR - timedelta(days=note_index * rng.randint(1, 6),
                                              hours=rng.randint(0, 10))
            body = "\n".join([
                f"{n_text} for {given} {family} ({mrn_for(number)})",
                f"Written {_instant(written)}",
                "",
                *rng.sample(_NOTE_LINES, 3),
            ])
            did = next_id("DocumentReference", "note")
            ds.add({
                "resourceType": "DocumentReference",
                "id": did,
                "status": "current",
                "docStatus": "final",
                "type": {"coding": [{"system": LOINC, "code": n_code, "display": n_text}],
                         "text": n_text},
                "category": [{"coding": [{
                    "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                    "code": "clinical-note", "display": "Clinical Note"}]}],
                "subject": _ref("Patient", pid),
                "date": _instant(written),
                "description": n_text,
                "content": [{"attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "language": "en-GB",
                    "title": n_text,
                    "creation": _instant(written),
                    "data": base64.b64encode(body.encode("utf-8")).decode("ascii"),
                }}],
                "context": {"encounter": [_ref("Encounter", latest_encounter)]},
            }, pid)
    return ds
