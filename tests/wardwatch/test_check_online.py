"""`wardwatch check --online`: after the offline checks, each target's CapabilityStatement is read
and every step the server does not declare is reported as FILE:LINE:COL: key: message, exit 2."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.collector.conftest import serve
from tests.collector.test_fhir_template import JWKS, PATIENT_COUNT, template_for_testbed  # noqa: F401 - a fixture
from testbed import TestbedServer, scenario_for_tests
from wardwatch.cli import main


@pytest.fixture(scope="module")
def epr() -> Iterator[TestbedServer]:
    with TestbedServer(scenario_for_tests(0.0, jwks=JWKS), patients=PATIENT_COUNT) as server:
        yield server


def check_online(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", "--online", "-c", str(path)])
    return result.exit_code, result.output


def test_the_template_is_declared_by_the_testbed(template_for_testbed):
    code, output = check_online(template_for_testbed)
    assert code == 0, output
    assert "every step is declared by the server's CapabilityStatement" in output


def test_a_typo_is_named_at_its_line_before_any_run(template_for_testbed, tmp_path):
    text = template_for_testbed.read_text(encoding="utf-8")
    typo = tmp_path / "typo.yaml"
    typo.write_text(text.replace("category: vital-signs", "categroy: vital-signs", 1), encoding="utf-8")
    line = next(n for n, row in enumerate(typo.read_text().splitlines(), 1) if "categroy" in row)
    code, output = check_online(typo)
    assert code == 2
    (problem,) = output.strip().splitlines()
    match = re.match(rf"^{re.escape(str(typo))}:(\d+):(\d+): (\S+): (.*)$", problem)
    assert match, problem
    assert int(match[1]) == line
    assert match[3] == "workflows.0.steps.3.query.categroy"
    assert "search parameter 'categroy' is not declared by the server for Observation" in match[4]
    assert "did you mean 'category'?" in match[4]
    # offline, the same file is fine: only the server knows its parameters
    assert CliRunner().invoke(main, ["check", "-c", str(typo)]).exit_code == 0


def test_an_undeclared_interaction_and_a_sort_key(template_for_testbed, tmp_path):
    text = template_for_testbed.read_text(encoding="utf-8")
    text = text.replace("      - name: delete-heart-rate\n        method: DELETE\n        path: /Observation/",
                        "      - name: delete-heart-rate\n        method: DELETE\n        path: /Encounter/")
    text = re.sub(r"_sort: -date( +# newest first.*)", r"_sort: -date,-dat\1", text)  # the encounters step
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    code, output = check_online(bad)
    assert code == 2
    keys = [line.split(": ")[1] for line in output.strip().splitlines()]
    assert keys == ["workflows.0.steps.2.query._sort", "workflows.1.cleanup.0.path"]
    assert "_sort by 'dat'" in output and "did you mean 'date'?" in output
    assert "does not declare the delete interaction on Encounter (declared: read, search-type)" in output


def test_an_unreachable_server_is_named_at_the_target(template_for_testbed, tmp_path):
    text = template_for_testbed.read_text(encoding="utf-8")
    down = tmp_path / "down.yaml"
    down.write_text(re.sub(r"base_url: http://127\.0\.0\.1:\d+", "base_url: http://127.0.0.1:9", text), encoding="utf-8")
    code, output = check_online(down)
    assert code == 2
    assert re.search(r"down\.yaml:\d+:\d+: targets\.epr\.base_url: cannot reach http://127\.0\.0\.1:9/fhir/metadata", output)


def test_a_statement_behind_a_login_is_named_as_such(tmp_path):
    async def login_first(request: Request) -> Response:
        return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)

    with serve(Starlette(routes=[Route("/fhir/metadata", login_first)])) as url:
        config = tmp_path / "w.yaml"
        config.write_text(
            f"targets:\n  epr:\n    base_url: {url}/fhir\n    auth: none\n"
            "workflows:\n  - {name: w, target: epr, steps: [{name: s, path: /Patient}]}\n",
            encoding="utf-8",
        )
        code, output = check_online(config)
    assert code == 2
    assert re.search(r"w\.yaml:3:15: targets\.epr\.base_url: http://127\.0\.0\.1:\d+/fhir/metadata answered 401 "
                     r"\(it is read without credentials", output), output
