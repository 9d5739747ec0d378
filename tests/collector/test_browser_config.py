"""Browser workflows in the config: the step forms, located errors, templates, the load budget."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from collector.browser.urls import page_url
from collector.config import (
    AnyWorkflowConfig,
    BrowserWorkflowConfig,
    SiteConfig,
    TargetConfig,
    TestPatientConfig,
    WorkflowConfig,
    check_references,
    requests_per_min,
)
from wardwatch.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = pydantic.TypeAdapter(AnyWorkflowConfig)
TARGETS = {"epr": TargetConfig.model_validate({"base_url": "http://127.0.0.1:9/fhir", "max_requests_per_min": 20})}
SITES = [SiteConfig(name="ward-7", timezone="Europe/London")]
PATIENTS = [TestPatientConfig(identifier="https://mrn.example|MRN000001")]


def browser(steps: list[dict[str, object]], **extra: object) -> dict[str, object]:
    return {"kind": "browser", "name": "open", "target": "epr", "url": "http://127.0.0.1:9/app/", "steps": steps, **extra}


def test_kind_selects_the_model_and_http_is_the_default() -> None:
    http = WORKFLOW.validate_python({"name": "h", "target": "epr", "steps": [{"name": "s", "path": "/x"}]})
    page = WORKFLOW.validate_python(browser([
        {"name": "open", "goto": "/app/", "wait_for": {"selector": "#sign-in"}},
        {"name": "find", "press": {"selector": "#mrn", "key": "Enter"}, "wait_for": {"selector": ".spinner", "state": "gone"}},
        {"name": "check", "assert_text": {"selector": "#banner", "contains": "{{ patient_mrn }}"}, "timeout_s": 2},
    ]))
    assert isinstance(http, WorkflowConfig) and http.kind == "http"
    assert isinstance(page, BrowserWorkflowConfig)
    assert [step.action for step in page.steps] == ["goto", "press", None]


@pytest.mark.parametrize(("step", "message"), [
    ({"name": "s", "click": "#a", "goto": "/"}, "at most one action"),
    ({"name": "s"}, "give an action"),
    ({"name": "s", "wait_for": {"selector": "#a", "state": "gone", "text": "x"}}, "text applies to state visible"),
    ({"name": "s", "fill": {"selector": "#p", "value": "${vault:x}"}}, "secret"),
    ({"name": "s", "goto": "/{{ unclosed"}, "malformed placeholder"),
])
def test_bad_steps_are_refused(step: dict[str, object], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        WORKFLOW.validate_python(browser([step]))


def test_a_bad_browser_step_is_located_in_the_file() -> None:
    text = (
        "targets: {epr: {base_url: 'http://127.0.0.1:9/fhir'}}\n"
        "sites: [{name: ward-7, timezone: Europe/London}]\n"
        "workflows:\n"
        "  - kind: browser\n"
        "    name: open\n"
        "    target: epr\n"
        "    url: http://127.0.0.1:9/app/\n"
        "    steps:\n"
        "      - {name: s, click: '#a', wait_for: {selector: '#b', state: shown}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "w.yaml")
    assert "w.yaml:9:66: workflows.0.steps.0.wait_for.state: Input should be 'visible' or 'gone'" in [
        str(p) for p in caught.value.problems]


def test_templates_may_use_run_and_patient_variables_only() -> None:
    workflow = WORKFLOW.validate_python(browser([
        {"name": "a", "fill": {"selector": "#mrn", "value": "{{ patient_mrn }}"}},
        {"name": "b", "goto": "/p/{{ patient_id }}"},
    ]))
    problems = [p for p in check_references(TARGETS, SITES, PATIENTS, [workflow]) if p.loc[0] == "workflows"]
    assert [(p.loc, "patient_id" in p.message) for p in problems] == [(("workflows", 0, "steps", 1, "goto"), True)]
    without_patients = check_references(TARGETS, SITES, [], [workflow])
    assert any("needs a test patient" in p.message for p in without_patients)


def test_the_load_budget_counts_the_pages_requests() -> None:
    workflow = WORKFLOW.validate_python(browser([{"name": "a", "goto": "/"}], max_page_requests=12, interval_s=30))
    assert requests_per_min("epr", [workflow], SITES) == 24
    problems = check_references(TARGETS, SITES, PATIENTS, [workflow])
    assert [p.loc for p in problems] == [("targets", "epr", "max_requests_per_min")]


@pytest.mark.parametrize(("url", "template", "query"), [
    ("http://h:8765/fhir/Patient/pat-0001", "/fhir/Patient/{id}", None),
    ("http://h/fhir/Patient?identifier=https%3A%2F%2Fx%7CMRN000001", "/fhir/Patient", "identifier=REDACTED"),
    ("https://h/fhir/r4/Observation/abc/_history/2", "/fhir/r4/Observation/{id}/_history/{id}", None),
    ("http://h/api/patients/123e4567-e89b/notes?x=1&x=2", "/api/patients/{id}/notes", "x=REDACTED&x=REDACTED"),
    ("http://h/app/app.js", "/app/app.js", None),
])
def test_page_urls_keep_no_identifier(url: str, template: str, query: str | None) -> None:
    recorded = page_url(url)
    assert recorded is not None and (recorded.template, recorded.query) == (template, query)
    assert page_url("data:,") is None


def test_without_chromium_the_probe_says_what_to_install_in_one_line(tmp_path: Path) -> None:
    config = (ROOT / "examples" / "testbed.yaml").read_text().replace("path: ../data/demo", f"path: {tmp_path / 'data'}")
    (tmp_path / "w.yaml").write_text(config)
    env = {**os.environ, "WARDWATCH_CHROMIUM": str(tmp_path / "no-chromium"),
           "WARDWATCH_TESTBED_CLIENT_SECRET": "testbed-demo-secret"}
    done = subprocess.run(
        [sys.executable, "-m", "wardwatch.cli", "probe", "-c", str(tmp_path / "w.yaml"), "--once", "--site", "ward-7",
         "--workflow", "open-patient-record-in-browser"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "apt-get install chromium" in done.stderr


def test_without_chromium_browser_workflows_not_chosen_by_name_are_left_out_saying_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wardwatch.config import load_config
    from wardwatch.wiring import check_browser

    config = load_config(ROOT / "examples" / "testbed.yaml")
    environ = {"WARDWATCH_CHROMIUM": str(tmp_path / "no-chromium")}
    kept = check_browser(config, environ, site="ward-7")
    assert [w.name for w in kept.workflows] == [w.name for w in config.workflows if w.kind != "browser"]
    assert "browser workflows left out" in capsys.readouterr().err
