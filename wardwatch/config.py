"""The one configuration file: sections owned by the packages that use them, assembled here.

Every problem is reported as ``FILE:LINE:COL: dotted.key: message``, all of them at once, by
mapping each pydantic error location onto the YAML node it came from (``yaml.compose`` keeps each
node's start mark).

Beyond what each section's model checks, the loader holds every file to a few general rules, so a
value cannot pass ``check`` and break a probe or a report later: the text is UTF-8 without
control characters; no mapping repeats a key (YAML would let the last one silently win); aliases
may not expand the document beyond ``MAX_EXPANDED_NODES`` values (an alias bomb); every number is
finite and a setting at most 1e12 in size, and a duration stays within a sensible range by its
unit suffix (``_s``, ``_minutes``, ``_days``: at most 366 days, or 100 years of retention); a URL (a key ending in ``url``) has a
port in 1-65535 and no user name or password.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from alerting.config import AlertingConfig, check_alerting
from analysis.config import (
    ChangeEventConfig,
    ObjectiveConfig,
    PeriodConfig,
    SLAConfig,
    TaskVolumeConfig,
    check_analysis_references,
)
from collector.config import (
    AnyWorkflowConfig,
    SiteConfig,
    TargetConfig,
    TestPatientConfig,
    check_references,
)
from collector.secretref import SecretResolutionError, resolve_secret
from collector.spool import ExportConfig
from dashboard.config import DashboardConfig
from observatory.config import ObservatoryConfig, check_observatory_references
from store.config import StoreConfig

__all__ = ["ConfigError", "ConfigProblem", "WardwatchConfig", "load_config", "parse_config"]


class WardwatchConfig(BaseModel):
    """The whole file. Each section's model lives in the package that uses it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store: StoreConfig = Field(default_factory=StoreConfig, description="Where spans are kept (the data directory).")
    targets: dict[str, TargetConfig] = Field(
        default_factory=dict, description="The EPRs probed, by name: base URL, TLS, authentication, load limits."
    )
    sites: list[SiteConfig] = Field(default_factory=list, description="Where probes run, each with its time zone.")
    patients: list[TestPatientConfig] = Field(
        default_factory=list, description="Test patients by identifier (never real patients); one is picked per run."
    )
    workflows: list[AnyWorkflowConfig] = Field(
        default_factory=list, description="The clinical tasks probed: steps, cadence, timeouts, sites."
    )
    periods: list[PeriodConfig] = Field(
        default_factory=list, description="Clinical periods (ward rounds, clinics) in each site's local time."
    )
    objectives: list[ObjectiveConfig] = Field(
        default_factory=list, description="Experience objectives on whole runs, judged in short windows."
    )
    slas: list[SLAConfig] = Field(
        default_factory=list, description="The SLAs as the contract computes them (metric, target, window, hours)."
    )
    changes: list[ChangeEventConfig] = Field(
        default_factory=list, description="Change events (releases, configuration changes) to compare before and after."
    )
    task_volumes: list[TaskVolumeConfig] = Field(
        default_factory=list, description="How often clinicians do each task, to scale the clinician time lost."
    )
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig, description="Where the dashboard listens.")
    export: ExportConfig = Field(
        default_factory=ExportConfig,
        description="Where a probe sends its spans besides the local store: export.observatory sends them to the observatory.",
    )
    observatory: ObservatoryConfig = Field(
        default_factory=ObservatoryConfig,
        description="The central observatory (`wardwatch observatory`): site tokens, EPR sources, TLS, limits.",
    )
    alerting: AlertingConfig | None = Field(
        None, description="Alerts evaluated over the store and where they are delivered (wardwatch alerts)."
    )


@dataclass(frozen=True)
class ConfigProblem:
    """One problem, located in the file."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    key: str  # dotted path, e.g. workflows.1.steps.0.timeout_s
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.key}: {self.message}"


class ConfigError(Exception):
    """The file could not be used; ``problems`` lists every reason, located."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> WardwatchConfig:
    """Read, validate and cross-check a configuration file.

    Relative ``store.path`` values are resolved against the file's directory, so a config works
    from wherever the command is run. With ``environ``, secret references and TLS files are
    checked too (``wardwatch check``). Raises ``ConfigError`` listing every problem found.
    """
    raw = _read_config_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        raise ConfigError([ConfigProblem(str(path), line, column, "file", message)]) from exc
    return parse_config(text, str(path), base_dir=path.resolve().parent, environ=environ)


MAX_CONFIG_BYTES = 4 * 1024 * 1024  # the example is 12 KiB


def _read_config_bytes(path: Path) -> bytes:
    """The file's bytes: only a regular file (a FIFO would block, /dev/zero never end), at most 4 MiB."""

    def problem(message: str) -> ConfigError:
        return ConfigError([ConfigProblem(str(path), 1, 1, "file", message)])

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise problem(f"cannot read: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise problem("not a regular file")
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise problem(f"larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB: not a configuration file")
    return raw


def parse_config(
    text: str, filename: str = "<string>", *, base_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> WardwatchConfig:
    """Validate configuration text; ``filename`` only labels the problems."""
    try:
        root_node = yaml.compose(text, Loader=_LOADER)
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError([ConfigProblem(filename, line, col, "yaml", str(exc.problem or exc))]) from exc
    except yaml.reader.ReaderError as exc:  # a byte YAML refuses (NUL, BEL, ...): at its position
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        character = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        raise ConfigError([ConfigProblem(filename, line, col, "yaml", f"{exc.reason} (U+{character:04X})")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(filename, 1, 1, "yaml", str(exc).splitlines()[0])]) from exc
    node_problems = _check_nodes(root_node)
    if node_problems:
        raise ConfigError([ConfigProblem(filename, *where, key, message) for where, key, message in node_problems])
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(filename, 1, 1, "file", "the file must be a mapping of sections")])

    locate = _Locator(filename, root_node)
    try:
        config = WardwatchConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(
            [locate(err["loc"], _message(err), at_key=err["type"] == "extra_forbidden") for err in exc.errors()]
        ) from exc
    value_problems = [locate(loc, message) for loc, message in _check_values(config)]
    if value_problems:  # before the cross-checks, which would compute with these values
        raise ConfigError(value_problems)

    problems = [
        locate(p.loc, p.message)
        for p in check_references(config.targets, config.sites, config.patients, config.workflows, environ=environ)
    ]
    problems += [locate(loc, message) for loc, message in _check_sections(config)]
    if environ is not None:
        problems += [locate(loc, message) for loc, message in _token_problems(config, environ)]
    if problems:
        raise ConfigError(problems)

    if base_dir is not None and not config.store.path.is_absolute():
        store = config.store.model_copy(update={"path": (base_dir / config.store.path).resolve()})
        config = config.model_copy(update={"store": store})
    temp = config.store.duckdb_temp_directory
    if base_dir is not None and temp is not None and not temp.is_absolute():
        store = config.store.model_copy(update={"duckdb_temp_directory": (base_dir / temp).resolve()})
        config = config.model_copy(update={"store": store})
    return config


def _token_problems(config: WardwatchConfig, environ: Mapping[str, str]) -> list[tuple[tuple[Any, ...], str]]:
    """The observatory's tokens (each site's, each EPR's) and a probe's own, resolved here as the
    observatory and the probe will resolve them: "environment variable WARDWATCH_SITE_TOKEN_WARD_7
    is not set" at the key that names it."""
    references: list[tuple[tuple[Any, ...], str]] = [
        (("observatory", "tokens", site), reference) for site, reference in config.observatory.tokens.items()]
    references += [(("observatory", "sources", i, "token"), source.token)
                   for i, source in enumerate(config.observatory.sources)]
    if config.export.observatory is not None and config.export.observatory.token is not None:
        references.append((("export", "observatory", "token"), config.export.observatory.token))
    problems: list[tuple[tuple[Any, ...], str]] = []
    for loc, reference in references:
        try:
            resolve_secret(reference, environ)
        except SecretResolutionError as exc:
            problems.append((loc, str(exc)))
    return problems


def _check_sections(config: WardwatchConfig) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-section references that no single section can check alone."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    site_names = {s.name for s in config.sites}
    workflow_names = {w.name for w in config.workflows}
    period_names = {p.name for p in config.periods}
    for i, period in enumerate(config.periods):
        for j, site in enumerate(period.sites):
            if site not in site_names:
                problems.append((("periods", i, "sites", j), f"no site named {site!r} in sites"))
    for i, objective in enumerate(config.objectives):
        if objective.workflow not in workflow_names:
            problems.append(
                (("objectives", i, "workflow"), f"no workflow named {objective.workflow!r} in workflows")
            )
        for j, period in enumerate(objective.periods):
            if period not in period_names:
                problems.append((("objectives", i, "periods", j), f"no period named {period!r} in periods"))
    problems += check_observatory_references(config.observatory, site_names, set(config.targets))
    if config.alerting is not None:
        problems += list(check_alerting(config.alerting))
    return problems + list(
        check_analysis_references(
            workflows=workflow_names,
            sites=site_names,
            periods=config.periods,
            objectives=config.objectives,
            slas=config.slas,
            changes=config.changes,
            task_volumes=config.task_volumes,
        )
    )


# -- the general rules ---------------------------------------------------------------------------

MAX_EXPANDED_NODES = 100_000  # the example configuration has about 700
_MERGE_TAG = "tag:yaml.org,2002:merge"
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}
_DAY_S = 86_400
MAX_SETTING = 1e12  # no count, rate or target of a configuration comes near; 1e300 is a typo
# The largest sensible value of a number by the unit its key ends with.
_UNIT_LIMITS = {"_s": (366 * _DAY_S, "366 days (31622400 s)"), "_minutes": (366 * 1440, "366 days"),
                "_days": (36_600, "100 years")}


def _check_nodes(root: yaml.Node | None) -> list[tuple[tuple[int, int], str, str]]:
    """Duplicate keys, control characters in values and alias bombs, on the composed nodes.

    Aliases make the node graph share nodes; each node is visited once, and its expanded size (what
    a model would walk) is counted from its children's, so a bomb is caught without expanding it.
    """
    problems: list[tuple[tuple[int, int], str, str]] = []
    sizes: dict[int, int] = {}

    def at(node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def visit(node: yaml.Node, path: tuple[str, ...]) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a recursive alias counts once
        key = ".".join(path) or "file"
        size = 1
        if isinstance(node, yaml.ScalarNode):
            bad = next((c for c in node.value if c < " " and c not in _ALLOWED_CONTROLS), None)
            if bad is not None:
                problems.append((at(node), key, f"control character U+{ord(bad):04X} in a value"))
        elif isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                name = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
                if k.tag != _MERGE_TAG and isinstance(k, yaml.ScalarNode):
                    if name in seen:
                        problems.append((at(k), ".".join((*path, name)), "duplicate key (YAML would keep "
                                         "only the last; write it once)"))
                    seen.add(name)
                size += visit(k, path) + visit(v, path if k.tag == _MERGE_TAG else (*path, name))
        elif isinstance(node, yaml.SequenceNode):
            size += sum(visit(item, (*path, str(i))) for i, item in enumerate(node.value))
        sizes[id(node)] = size
        if size > MAX_EXPANDED_NODES and not any(p[2].startswith("aliases") for p in problems):
            problems.append((at(node), key, f"aliases expand this to {size:,} values, more than "
                             f"{MAX_EXPANDED_NODES:,} (an alias bomb?)"))
        return size

    if root is not None:
        visit(root, ())
    return problems


def _check_values(config: BaseModel) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Numbers that are not finite or beyond their range, and URLs with a bad port or userinfo.

    A setting (a field of a section's model, not a value inside a request's query or JSON body)
    is at most ``MAX_SETTING`` in size, and a duration at most its unit's limit.
    """

    def walk(value: Any, loc: tuple[Any, ...], key: str, setting: bool) -> Iterator[tuple[tuple[Any, ...], str]]:
        if isinstance(value, BaseModel):
            for name, info in type(value).model_fields.items():
                yaml_key = info.alias or name
                yield from walk(getattr(value, name), (*loc, yaml_key), yaml_key, True)
        elif isinstance(value, Mapping):
            for k, item in value.items():
                yield from walk(item, (*loc, k), str(k), False)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                yield from walk(item, (*loc, i), key, setting)
        elif isinstance(value, bool):
            return
        elif isinstance(value, int | float):
            if not math.isfinite(value):
                yield loc, "must be a finite number"
                return
            for suffix, (limit, label) in _UNIT_LIMITS.items():
                if key.endswith(suffix) and value > limit:
                    yield loc, f"at most {label}, not {value:g}"
                    return
            if setting and abs(value) > MAX_SETTING:
                yield loc, f"at most {MAX_SETTING:g} in size, not {value:g}"
        elif isinstance(value, str) and key.endswith("url"):
            message = _url_problem(value)
            if message:
                yield loc, message

    yield from walk(config, (), "", True)


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - urllib checks the range when it reads the port
    except ValueError:
        return "the port must be a number from 1 to 65535"
    if parts.port == 0:
        return "the port must be a number from 1 to 65535"
    if parts.username is not None or parts.password is not None:
        return "a URL must not carry a user name or password (give credentials under auth)"
    return None


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (check its spelling against the configuration reference)"
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"])


class _Locator:
    """Maps a pydantic/config location tuple onto the YAML node it names."""

    def __init__(self, filename: str, root: yaml.Node | None) -> None:
        self.filename = filename
        self.root = root

    def __call__(self, loc: Sequence[Any], message: str, *, at_key: bool = False) -> ConfigProblem:
        node = self.root
        path: list[str] = []
        for i, part in enumerate(loc):
            is_last = i == len(loc) - 1
            child = _child(node, part, key_node=at_key and is_last)
            if child is None:
                if isinstance(part, str) and not is_last and isinstance(node, yaml.MappingNode):
                    continue  # a union's tag (e.g. the auth type) names no node of its own
                path.append(str(part))
                break  # a missing key: point at the mapping that should hold it
            path.append(str(part))
            node = child
        key = ".".join(path) or "file"
        if node is None:
            return ConfigProblem(self.filename, 1, 1, key, message)
        mark = node.start_mark
        return ConfigProblem(self.filename, mark.line + 1, mark.column + 1, key, message)


# libyaml's safe loader where PyYAML was built with it: the same documents and marks, several
# times faster than the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _child(node: yaml.Node | None, part: Any, *, key_node: bool = False) -> yaml.Node | None:
    """The node under ``node`` for one location part; an unknown key is shown at the key itself."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == str(part):
                return k if key_node else v
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]
    return None


def locate_problems(path: Path, problems: Sequence[tuple[Sequence[Any], str]]) -> list[ConfigProblem]:
    """Problems found after loading (``check --online``), located in ``path`` as the loader's."""
    text = path.read_text(encoding="utf-8")
    locate = _Locator(str(path), yaml.compose(text, Loader=_LOADER))
    return [locate(loc, message) for loc, message in problems]
