"""Templates and JSON paths: the small languages of workflow specs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.jsonpath import JsonPath, JsonPathError
from collector.templating import Template, TemplateSyntaxError, UndefinedVariableError, render_json

BUNDLE = {
    "resourceType": "Bundle",
    "total": 2,
    "entry": [{"resource": {"id": "a", "name": [{"family": "X"}]}}, {"resource": {"id": "b"}}],
    "link": [{"relation": "self", "url": "s"}, {"relation": "next", "url": "n"}],
}


def test_template_renders_variables_and_reports_undefined_ones():
    template = Template.parse("/Patient/{{ patient_id }}/x/{{other}}")
    assert template.variables == ("patient_id", "other")
    assert template.render({"patient_id": "p1", "other": 3}) == "/Patient/p1/x/3"
    assert template.as_url_template() == "/Patient/{patient_id}/x/{other}"
    with pytest.raises(UndefinedVariableError) as caught:
        template.render({"patient_id": "p1"})
    assert caught.value.name == "other"


@pytest.mark.parametrize("text", ["{{ a b }}", "{{ 1x }}", "x {{ y", "}} z", "{{}}", "{{ a.b }}"])
def test_malformed_placeholders_are_rejected(text):
    with pytest.raises(TemplateSyntaxError):
        Template.parse(text)


def test_quote_applies_to_values_only():
    assert Template.parse("/a b/{{ x }}").render({"x": "c/d e"}, quote=lambda v: v.replace("/", "%2F")) == "/a b/c%2Fd e"


def test_render_json_keeps_the_type_of_a_single_placeholder():
    body = {"value": "{{ n }}", "text": "n={{ n }}", "list": ["{{ s }}", 1, None, True]}
    assert render_json(body, {"n": 72, "s": "x"}) == {"value": 72, "text": "n=72", "list": ["x", 1, None, True]}


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=30))
def test_text_without_braces_renders_to_itself(text):
    assert Template.parse(text).render({}) == text


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.total", [2]),
        ("$.entry[0].resource.id", ["a"]),
        ("$.entry[-1].resource.id", ["b"]),
        ("$.entry[*].resource.id", ["a", "b"]),
        ("$['entry'][1]['resource'].id", ["b"]),
        ("$.entry[0].resource.name[0].family", ["X"]),
        ("$.entry[5].resource.id", []),
        ("$.missing.deeper", []),
        ("$.total.x", []),
        ("$", [BUNDLE]),
        ("$.link[*].relation", ["self", "next"]),
    ],
)
def test_json_path_finds(path, expected):
    assert JsonPath.parse(path).find(BUNDLE) == expected


def test_json_path_counts_arrays_and_matches():
    assert JsonPath.parse("$.entry").count(BUNDLE) == 2
    assert JsonPath.parse("$.entry[*].resource.id").count(BUNDLE) == 2
    assert JsonPath.parse("$.total").count(BUNDLE) == 1
    assert JsonPath.parse("$.nothing").count(BUNDLE) == 0
    assert JsonPath.parse("$.entry").count({"resourceType": "Bundle"}) == 0


@pytest.mark.parametrize("text", ["entry", "$.", "$..id", "$.a[?(@.x)]", "$[1:2]", "$.a b"])
def test_json_path_outside_the_subset_is_rejected(text):
    with pytest.raises(JsonPathError):
        JsonPath.parse(text)
