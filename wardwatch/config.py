"""The one configuration file: sections owned by the packages that use them, assembled here.

Every problem is reported as ``FILE:LINE:COL: dotted.key: message``, all of them at once, by
mapping each pydantic error location onto the YAML node it came from (``yaml.compose`` keeps each
node's start mark).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from analysis.config import (
    ChangeEventConfig,
    ObjectiveConfig,
    PeriodConfig,
    SLAConfig,
    TaskVolumeConfig,
    check_analysis_references,
)
from collector.config import (
    SiteConfig,
    TargetConfig,
    TestPatientConfig,
    WorkflowConfig,
    check_references,
)
from dashboard.config import DashboardConfig
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
    workflows: list[WorkflowConfig] = Field(
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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), 1, 1, "file", f"cannot read: {exc.strerror}")]) from exc
    return parse_config(text, str(path), base_dir=path.resolve().parent, environ=environ)


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

    problems = [
        locate(p.loc, p.message)
        for p in check_references(config.targets, config.sites, config.patients, config.workflows, environ=environ)
    ]
    problems += [locate(loc, message) for loc, message in _check_sections(config)]
    if problems:
        raise ConfigError(problems)

    if base_dir is not None and not config.store.path.is_absolute():
        store = config.store.model_copy(update={"path": (base_dir / config.store.path).resolve()})
        config = config.model_copy(update={"store": store})
    return config


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
