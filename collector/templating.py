"""``{{ name }}`` substitution for workflow steps: no expressions, no filters, no eval.

A template is literal text with placeholders ``{{ name }}`` (spaces inside the braces optional).
Names are identifiers (``[A-Za-z_][A-Za-z0-9_]*``). A literal ``{{`` cannot be written: workflow
paths, queries, headers and bodies never need one, and refusing it keeps typos visible.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Template",
    "TemplateError",
    "TemplateSyntaxError",
    "UndefinedVariableError",
    "iter_json_templates",
    "render_json",
]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class TemplateError(ValueError):
    """A template could not be parsed or rendered."""


class TemplateSyntaxError(TemplateError):
    """The text has a ``{{`` or ``}}`` that is not part of a well-formed placeholder."""


class UndefinedVariableError(TemplateError):
    """A placeholder names a variable that has no value.

    Attributes:
        name: the variable's name.
    """

    def __init__(self, name: str, template: str) -> None:
        super().__init__(f"undefined variable {name!r} in template {template!r}")
        self.name = name


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template.

    Attributes:
        text: the source text.
        parts: literal strings and variable names alternating, starting with a literal
            (``("a/", "x", "/b")`` for ``"a/{{ x }}/b"``).
    """

    text: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        """Parse ``text``; raise :class:`TemplateSyntaxError` on a stray ``{{`` or ``}}``."""
        parts: list[str] = []
        position = 0
        for match in _PLACEHOLDER.finditer(text):
            parts.append(text[position : match.start()])
            parts.append(match.group(1))
            position = match.end()
        parts.append(text[position:])
        for literal in parts[0::2]:
            if "{{" in literal or "}}" in literal:
                raise TemplateSyntaxError(
                    f"malformed placeholder in {text!r}: write {{{{ name }}}} with a plain identifier"
                )
        return cls(text=text, parts=tuple(parts))

    @property
    def variables(self) -> tuple[str, ...]:
        """The variable names used, in order of appearance (repeats kept)."""
        return self.parts[1::2]

    @property
    def is_literal(self) -> bool:
        """True when the template has no placeholder."""
        return len(self.parts) == 1

    @property
    def is_single_placeholder(self) -> bool:
        """True when the whole text is exactly one placeholder (``"{{ x }}"``)."""
        return len(self.parts) == 3 and self.parts[0] == "" and self.parts[2] == ""

    def render(self, variables: Mapping[str, Any], *, quote: Any = None) -> str:
        """Substitute every placeholder with ``str(value)``.

        Args:
            variables: the values by name.
            quote: optional function applied to each substituted value (e.g. URL quoting of a
                path segment); literal text is never quoted.

        Raises:
            UndefinedVariableError: a placeholder names a variable missing from ``variables``.
        """
        out: list[str] = []
        for index, part in enumerate(self.parts):
            if index % 2 == 0:
                out.append(part)
                continue
            if part not in variables:
                raise UndefinedVariableError(part, self.text)
            value = str(variables[part])
            out.append(quote(value) if quote is not None else value)
        return "".join(out)

    def render_value(self, variables: Mapping[str, Any]) -> Any:
        """Like :meth:`render`, but a template that is a single placeholder keeps the value's type.

        ``"{{ heart_rate }}"`` renders to the number 72 when the variable holds 72, so JSON bodies
        can carry numbers extracted from earlier responses.
        """
        if self.is_single_placeholder:
            name = self.parts[1]
            if name not in variables:
                raise UndefinedVariableError(name, self.text)
            return variables[name]
        return self.render(variables)

    def as_url_template(self) -> str:
        """The OpenTelemetry ``url.template`` spelling: ``/Patient/{patient_id}``."""
        return "".join(
            part if index % 2 == 0 else "{" + part + "}" for index, part in enumerate(self.parts)
        )


def iter_json_templates(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Template]]:
    """Yield ``(location, template)`` for every string inside a JSON value (keys are literal)."""
    if isinstance(value, str):
        yield loc, Template.parse(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_json_templates(item, (*loc, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from iter_json_templates(item, (*loc, index))


def render_json(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON value; single-placeholder strings keep the value's type."""
    if isinstance(value, str):
        return Template.parse(value).render_value(variables)
    if isinstance(value, Mapping):
        return {key: render_json(item, variables) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [render_json(item, variables) for item in value]
    return value
