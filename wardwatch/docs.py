"""The configuration reference, generated from the configuration models themselves.

A key's description is its ``Field(description=...)``, or else its line in the model's
``Attributes:`` docstring section, so the models stay the one place a key is documented.
``python -m wardwatch.docs`` prints the reference; ``docs/configuration.md`` is its output, and a
test fails when the file is stale or a key has no description.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from wardwatch.config import WardwatchConfig

__all__ = ["ConfigKey", "config_keys", "config_reference"]

_ATTRIBUTE_LINE = re.compile(r"^\s{4,}(\w+):\s*(.*)$")


@dataclass(frozen=True)
class ConfigKey:
    path: str  # dotted, with [] for list items and <name> for mapping keys
    type: str
    default: str
    description: str


def config_keys(model: type[BaseModel] = WardwatchConfig, prefix: str = "") -> Iterator[ConfigKey]:
    """Every key of ``model`` and of the models nested in it, depth first, in declaration order."""
    described = _docstring_attributes(model)
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        description = field.description or described.get(name, "") or _tag_description(name, field.annotation)
        yield ConfigKey(path, _type_name(field.annotation), _default(field), description)
        for suffix, nested in _nested_models(field.annotation):
            yield from config_keys(nested, f"{path}{suffix}.")


def config_reference() -> str:
    """The reference as Markdown: one table per top-level section."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from the configuration models by `python -m wardwatch.docs`; do not edit by hand.",
        "Every problem in a file is reported as `FILE:LINE:COL: key: message` (exit code 2) by",
        "`wardwatch check -c FILE`. `[]` marks a list item, `<name>` a key you choose. Secrets are",
        "references, never values: `${env:NAME}` or `${file:PATH}`.",
        "",
    ]
    for section, field in WardwatchConfig.model_fields.items():
        lines += [f"## `{section}`", "", field.description or _docstring_attributes(WardwatchConfig).get(section, ""), ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key in config_keys(WardwatchConfig):
            if key.path == section or key.path.startswith((f"{section}.", f"{section}[")):
                lines.append(f"| `{key.path}` | {key.type} | {key.default} | {_cell(key.description)} |")
        lines.append("")
    return "\n".join(lines)


def _docstring_attributes(model: type[BaseModel]) -> dict[str, str]:
    """``name: text`` lines of the Google-style ``Attributes:`` section, continuation lines joined."""
    doc = inspect.getdoc(model) or ""
    found: dict[str, str] = {}
    in_section = False
    current: str | None = None
    for line in doc.splitlines():
        if line.strip() == "Attributes:":
            in_section = True
            continue
        if not in_section:
            continue
        if line and not line.startswith(" "):
            break  # the next section
        match = _ATTRIBUTE_LINE.match("    " + line.lstrip()) if line.startswith("    ") and not line.startswith("        ") else None
        if match:
            current = match[1]
            found[current] = match[2].strip()
        elif current and line.strip():
            found[current] += " " + line.strip()
    return found


def _tag_description(name: str, annotation: object) -> str:
    """A union's tag (``type: bearer``) documents itself: it selects the form whose keys follow."""
    if name == "type" and typing.get_origin(annotation) is typing.Literal:
        return f"selects this form: {', '.join(repr(a) for a in typing.get_args(annotation))}; its keys follow."
    return ""


def _nested_models(annotation: object) -> Iterator[tuple[str, type[BaseModel]]]:
    """The models inside an annotation, with the path suffix that reaches them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation
        return
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        yield from _nested_models(args[0])
    elif origin in (list, tuple, typing.Sequence) or (origin is not None and str(origin).endswith("Sequence")):
        for arg in args:
            for suffix, model in _nested_models(arg):
                yield "[]" + suffix, model
    elif origin is dict:
        for suffix, model in _nested_models(args[1]):
            yield ".<name>" + suffix, model
    elif origin in (typing.Union, types.UnionType):
        seen: set[type] = set()
        for arg in args:
            for suffix, model in _nested_models(arg):
                if model not in seen:
                    seen.add(model)
                    yield suffix, model


def _type_name(annotation: object) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = re.sub(r"\b(typing|pydantic|pathlib|datetime|collections\.abc|[a-z_]+\.config)\.", "", text)
    text = text.replace("NoneType", "None").replace("|", "\\|")
    return f"`{text}`" if len(text) < 60 else "`object` (see below)"


def _default(field: object) -> str:
    default = getattr(field, "default", PydanticUndefined)
    factory = getattr(field, "default_factory", None)
    if default is PydanticUndefined and factory is None:
        return "required"
    if factory is not None:
        try:
            value = factory()
        except TypeError:
            return "(computed)"
        if isinstance(value, BaseModel):
            return "(see below)"
        return f"`{value!r}`"
    return f"`{default!r}`" if default is not None else "none"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":  # pragma: no cover
    print(config_reference())
