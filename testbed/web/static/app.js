// The testbed EPR's web front end: plain JavaScript over the testbed's FHIR API, no build step.
// It behaves as the plan embedded in the page says (testbed/web/model.py holds the same rules as
// ground truth): panels together or one after another, a slow notes list, a lingering spinner.
"use strict";

const PLAN = JSON.parse(document.getElementById("plan").textContent);
const FHIR = location.origin + "/fhir";
const $ = (selector) => document.querySelector(selector);
let token = null;
let current = null; // the open patient's id

function show(view) {
  for (const element of document.querySelectorAll(".view")) element.hidden = element.id !== view;
}

async function api(path, options = {}) {
  const response = await fetch(FHIR + path, {
    ...options,
    headers: { Accept: "application/fhir+json", Authorization: "Bearer " + token, ...(options.headers || {}) },
  });
  if (!response.ok) throw new Error("the EPR answered " + response.status);
  return response.json(); // a malformed body throws here, uncaught, as front ends do
}

// Main-thread work for ``ms`` milliseconds: drawing rich text is what makes long notes slow.
function busy(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* rendering */ }
}

function fill(panel, items) {
  const list = $("#panel-" + panel + " ul");
  list.replaceChildren(...items.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
}

function entries(bundle) { return (bundle.entry || []).map((entry) => entry.resource); }
function codeText(concept) { return (concept && (concept.text || (concept.coding || [{}])[0].display)) || ""; }

const PANELS = {
  encounters: ["/Encounter?patient={id}&_sort=-date&_count=5",
    (r) => `${codeText((r.type || [])[0]) || r.class?.display || "Encounter"} (${r.status})`],
  vitals: ["/Observation?patient={id}&category=vital-signs&_sort=-date&_count=10",
    (r) => `${codeText(r.code)}: ${r.valueQuantity ? r.valueQuantity.value + " " + (r.valueQuantity.unit || "") : ""}`],
  medications: ["/MedicationRequest?patient={id}&status=active",
    (r) => codeText(r.medicationCodeableConcept) || "Medication"],
  allergies: ["/AllergyIntolerance?patient={id}", (r) => codeText(r.code) || "Allergy"],
  notes: ["/DocumentReference?patient={id}&_sort=-date&_count=10", (r) => {
    const data = r.content?.[0]?.attachment?.data;
    return data ? new TextDecoder().decode(Uint8Array.from(atob(data), (c) => c.charCodeAt(0))).split("\n")[0] : r.description;
  }],
};

async function loadPanel(panel, id) {
  const [path, line] = PANELS[panel];
  const items = entries(await api(path.replace("{id}", encodeURIComponent(id)))).map(line);
  if (panel === "notes") busy(PLAN.note_render_ms * items.length);
  fill(panel, items);
}

async function openRecord(id) {
  performance.mark("record-open");
  current = id;
  show("record");
  const record = $("#record");
  record.dataset.state = "loading";
  $("#record-spinner").hidden = false;
  $("#banner").textContent = "";
  for (const panel of Object.keys(PANELS)) fill(panel, []);
  const patient = await api("/Patient/" + encodeURIComponent(id));
  const name = (patient.name || [{}])[0];
  const mrn = (patient.identifier || []).find((i) => i.system && i.system.endsWith("/mrn"));
  $("#banner").textContent = `${(name.given || []).join(" ")} ${name.family || ""} · ${patient.gender || ""} · born ${patient.birthDate || ""} · ${mrn ? mrn.value : ""}`;
  if (PLAN.sequential_panels) {
    for (const panel of Object.keys(PANELS)) await loadPanel(panel, id);
  } else {
    await Promise.all(Object.keys(PANELS).map((panel) => loadPanel(panel, id)));
  }
  setTimeout(() => {
    $("#record-spinner").hidden = true;
    record.dataset.state = "ready";
    performance.mark("record-visible");
  }, PLAN.spinner_linger_ms);
}

async function signIn(event) {
  event.preventDefault();
  const body = new URLSearchParams({
    grant_type: "client_credentials", client_id: $("#username").value, client_secret: $("#password").value,
  });
  const response = await fetch(location.origin + "/auth/token", { method: "POST", body });
  if (!response.ok) { $("#sign-in-error").hidden = false; return; }
  token = (await response.json()).access_token;
  $("#password").value = "";
  $("#nav").hidden = false;
  show("search");
}

async function search(event) {
  event.preventDefault();
  const status = $("#search-status");
  status.hidden = false;
  status.textContent = "Searching…";
  $("#results").replaceChildren();
  const system = PLAN.mrn_system;
  const found = entries(await api("/Patient?identifier=" + encodeURIComponent(system + "|" + $("#mrn").value.trim())));
  status.textContent = found.length ? `${found.length} found` : "No patient found";
  $("#results").replaceChildren(...found.map((patient) => {
    const name = (patient.name || [{}])[0];
    const item = Object.assign(document.createElement("li"), {
      className: "patient", textContent: `${(name.given || []).join(" ")} ${name.family || ""}`,
    });
    item.addEventListener("click", () => openRecord(patient.id));
    return item;
  }));
}

async function chart(event) {
  event.preventDefault();
  const status = $("#chart-status");
  status.hidden = true;
  const observation = {
    resourceType: "Observation", status: "final",
    category: [{ coding: [{ system: "http://terminology.hl7.org/CodeSystem/observation-category", code: "vital-signs" }] }],
    code: { coding: [{ system: "http://loinc.org", code: "8867-4", display: "Heart rate" }], text: "Heart rate" },
    subject: { reference: "Patient/" + current },
    effectiveDateTime: new Date().toISOString(),
    valueQuantity: { value: Number($("#chart-hr").value), unit: "beats/minute", system: "http://unitsofmeasure.org", code: "/min" },
  };
  await api("/Observation", { method: "POST", body: JSON.stringify(observation), headers: { "Content-Type": "application/fhir+json" } });
  status.textContent = "Saved";
  status.hidden = false;
}

async function handover() {
  show("handover");
  const view = $("#handover");
  view.dataset.state = "loading";
  $("#handover-spinner").hidden = false;
  $("#handover-list").replaceChildren();
  const ward = $("#ward").value;
  const found = entries(await api(`/Encounter?location=${encodeURIComponent(ward)}&status=in-progress&_count=50`));
  $("#handover-list").replaceChildren(...found.map((encounter) => {
    const item = Object.assign(document.createElement("li"), { textContent: encounter.subject?.display || "Patient" });
    const id = (encounter.subject?.reference || "").split("/")[1];
    if (id) item.addEventListener("click", () => openRecord(id));
    return item;
  }));
  $("#handover-spinner").hidden = true;
  view.dataset.state = "ready";
}

$("#sign-in").addEventListener("submit", signIn);
$("#search-form").addEventListener("submit", search);
$("#chart").addEventListener("submit", chart);
$("#nav-search").addEventListener("click", () => show("search"));
$("#nav-handover").addEventListener("click", () => show("handover"));
$("#handover-load").addEventListener("click", handover);
