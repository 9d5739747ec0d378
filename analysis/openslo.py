"""OpenSLO: read SLO documents as experience objectives, and write Wardwatch's objectives as SLOs.

Reading (``openslo/v1``, and Sloth's ``openslo/v1alpha``): each ``SLO`` document's objectives
become :class:`OpenSLOObjective` values (ratio or threshold metric, op and value, target (given as
``target`` or ``targetPercent``), ``timeSliceTarget``/``timeSliceWindow`` (a duration or, as the
v1 specification says, a bare number of minutes), the budgeting method, the calendar or rolling
window with its duration in OpenSLO units: ``m`` minutes, ``M`` months). :func:`to_objective_configs`
turns them into :class:`analysis.config.ObjectiveConfig` for a workflow:

- a threshold metric's ``value`` is the waiting threshold (in ``value_unit``); ``op`` ``lt`` and
  ``lte`` both read as "at most" (waiting is measured to the microsecond; the difference is
  immaterial), ``gt``/``gte`` are refused for a latency threshold;
- a ratio metric has no threshold of its own: the caller gives ``threshold_s`` (or the document an
  annotation ``wardwatch.threshold_s``);
- the workflow comes from the annotation ``wardwatch.workflow``, else the caller, else the
  document's ``service``.

Writing (:func:`objectives_to_openslo`) produces one ``openslo/v1`` SLO per objective with a
threshold metric (``op: lte``, ``value`` in seconds) whose metric source is ``wardwatch``, and
annotations that carry what OpenSLO has no field for (workflow, periods, sites, window minutes),
so reading the output back gives the same objectives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from analysis.budget import BUDGETING_METHODS, Duration, parse_duration
from analysis.config import ObjectiveConfig

__all__ = [
    "OpenSLOObjective",
    "objectives_to_openslo",
    "read_openslo",
    "to_objective_configs",
]

ANNOTATION_PREFIX = "wardwatch."
_UNITS_S = {"s": 1.0, "ms": 0.001, "us": 1e-6}
_V1ALPHA_UNITS = {"second": "s", "minute": "m", "hour": "h", "day": "d", "week": "w",
                  "month": "M", "quarter": "Q", "year": "Y"}


@dataclass(frozen=True)
class OpenSLOObjective:
    """One objective of an OpenSLO ``SLO`` document.

    Attributes:
        slo: the SLO's ``metadata.name``.
        name: the objective's ``displayName`` (else the SLO's display name or name).
        description: the SLO's description.
        service: the SLO's service.
        metric: ``ratio`` or ``threshold``.
        op: ``lt``, ``lte``, ``gt``, ``gte`` or ``None``.
        value: a threshold metric's threshold, in the metric's unit (``None`` for ratios).
        target: the objective's target ratio.
        budgeting_method: ``Occurrences``, ``Timeslices`` or ``RatioTimeslices``.
        time_slice_target: for ``Timeslices``.
        time_slice_window: the slice length, when given.
        window: the compliance window's duration.
        rolling: a rolling window (else calendar-aligned).
        calendar_timezone: the calendar's time zone, when given.
        annotations: ``metadata.annotations`` (and labels), as strings.
    """

    slo: str
    name: str
    description: str
    service: str
    metric: str
    op: str | None
    value: float | None
    target: float
    budgeting_method: str
    time_slice_target: float | None
    time_slice_window: Duration | None
    window: Duration
    rolling: bool
    calendar_timezone: str | None
    annotations: Mapping[str, str]


def _is_file(text: str) -> bool:
    if "\n" in text:
        return False
    try:
        return Path(text).is_file()
    except OSError:  # not a path at all (e.g. too long a name)
        return False


def _documents(source: Path | str | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(source, Path) or (isinstance(source, str) and _is_file(source)):
        text = Path(source).read_text(encoding="utf-8")
        return [d for d in yaml.safe_load_all(text) if d]
    if isinstance(source, str):
        return [d for d in yaml.safe_load_all(source) if d]
    return [d for d in source if d]


def _window_v1(spec: Mapping[str, Any]) -> tuple[Duration, bool, str | None]:
    windows = spec.get("timeWindow") or []
    if not windows:
        raise ValueError("an SLO needs a timeWindow")
    w = windows[0]
    calendar = w.get("calendar") or {}
    return parse_duration(str(w["duration"])), bool(w.get("isRolling", False)), calendar.get("timeZone")


def _window_v1alpha(spec: Mapping[str, Any]) -> tuple[Duration, bool, str | None]:
    windows = spec.get("timeWindows") or []
    if not windows:
        raise ValueError("an SLO needs timeWindows")
    w = windows[0]
    unit = _V1ALPHA_UNITS.get(str(w.get("unit", "")).lower())
    if unit is None:
        raise ValueError(f"unknown time window unit {w.get('unit')!r}")
    calendar = w.get("calendar") or {}
    rolling = bool(w.get("isRolling", not calendar))
    return Duration(int(w["count"]), unit), rolling, calendar.get("timeZone")


def _metric_kind(indicator_spec: Mapping[str, Any] | None, objective: Mapping[str, Any]) -> str:
    spec = dict(indicator_spec or {})
    if "ratioMetric" in spec or "ratioMetrics" in objective or "ratioMetric" in objective:
        return "ratio"
    if "thresholdMetric" in spec or "thresholdMetric" in objective:
        return "threshold"
    raise ValueError("an SLO indicator needs a ratioMetric or a thresholdMetric")


def read_openslo(source: Path | str | Iterable[Mapping[str, Any]]) -> list[OpenSLOObjective]:
    """The objectives of every ``SLO`` document in ``source``.

    Args:
        source: a YAML file (one or several documents), YAML text, or parsed documents. Documents
            of another kind (``Service``, ``SLI``, ``AlertPolicy``) are skipped.

    Raises:
        ValueError: an SLO document lacks a window, an indicator metric or a target, or has an
            unknown budgeting method or duration.
    """
    out: list[OpenSLOObjective] = []
    for document in _documents(source):
        if document.get("kind") != "SLO":
            continue
        version = str(document.get("apiVersion", ""))
        metadata = document.get("metadata") or {}
        spec = document.get("spec") or {}
        name = str(metadata.get("name", ""))
        display = str(metadata.get("displayName") or name)
        annotations = {str(k): str(v) for k, v in {**(metadata.get("labels") or {}),
                                                   **(metadata.get("annotations") or {})}.items()}
        method = str(spec.get("budgetingMethod", "Occurrences"))
        if method not in BUDGETING_METHODS:
            raise ValueError(f"SLO {name}: unknown budgetingMethod {method!r}")
        if version == "openslo/v1alpha":
            window, rolling, tz = _window_v1alpha(spec)
            indicator_spec = None
        else:
            window, rolling, tz = _window_v1(spec)
            indicator = spec.get("indicator") or {}
            indicator_spec = indicator.get("spec")
            if indicator_spec is None and spec.get("indicatorRef"):
                raise ValueError(f"SLO {name}: indicatorRef is not supported; inline the indicator")
        for objective in spec.get("objectives") or []:
            target = _target(name, objective)
            slice_window = objective.get("timeSliceWindow")
            value = objective.get("value")
            out.append(OpenSLOObjective(
                slo=name, name=str(objective.get("displayName") or display),
                description=str(spec.get("description") or ""),
                service=str(spec.get("service") or ""),
                metric=_metric_kind(indicator_spec, objective),
                op=objective.get("op"), value=None if value is None else float(value),
                target=target, budgeting_method=method,
                time_slice_target=(None if objective.get("timeSliceTarget") is None
                                   else float(objective["timeSliceTarget"])),
                time_slice_window=None if slice_window is None else _slice_window(slice_window),
                window=window, rolling=rolling, calendar_timezone=tz, annotations=annotations,
            ))
    return out


def _target(slo: str, objective: Mapping[str, Any]) -> float:
    """``target`` (a ratio in [0, 1)) or ``targetPercent`` (in [0, 100)): OpenSLO v1 allows either."""
    if "target" in objective and "targetPercent" in objective:
        raise ValueError(f"SLO {slo}: an objective has target or targetPercent, not both")
    if "targetPercent" in objective:
        return float(objective["targetPercent"]) / 100
    if "target" not in objective:
        raise ValueError(f"SLO {slo}: an objective needs a target or a targetPercent")
    return float(objective["target"])


def _slice_window(value: Any) -> Duration:
    """``timeSliceWindow``: a duration (``5m``) or, as OpenSLO v1 says, a bare number of minutes."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0 or value != int(value):
            raise ValueError(f"timeSliceWindow {value!r} is not a whole number of minutes")
        return Duration(int(value), "m")
    return parse_duration(str(value))


def _list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def to_objective_configs(
    slos: Sequence[OpenSLOObjective],
    workflow: str | None = None,
    threshold_s: float | None = None,
    value_unit: str = "s",
) -> list[ObjectiveConfig]:
    """Wardwatch experience objectives from OpenSLO objectives.

    Args:
        slos: from :func:`read_openslo`.
        workflow: the workflow they judge, unless an annotation ``wardwatch.workflow`` names one
            (default: the SLO's service).
        threshold_s: the waiting threshold for ratio metrics without a ``wardwatch.threshold_s``
            annotation.
        value_unit: the unit of threshold metrics' ``value``: ``s``, ``ms`` or ``us``.

    Raises:
        ValueError: a latency threshold with ``op`` gt/gte, a ratio metric without a threshold,
            an unknown unit, or a slice window that is not whole minutes.
    """
    if value_unit not in _UNITS_S:
        raise ValueError(f"value_unit is one of {', '.join(_UNITS_S)}, not {value_unit!r}")
    out = []
    for slo in slos:
        notes = slo.annotations
        if slo.metric == "threshold":
            if slo.op in ("gt", "gte"):
                raise ValueError(f"SLO {slo.slo}: a waiting-time threshold must be lt or lte")
            if slo.value is None:
                raise ValueError(f"SLO {slo.slo}: a threshold metric needs a value")
            threshold = slo.value * _UNITS_S[value_unit]
        else:
            given = notes.get(ANNOTATION_PREFIX + "threshold_s")
            threshold = float(given) if given is not None else threshold_s  # type: ignore[assignment]
            if threshold is None:
                raise ValueError(f"SLO {slo.slo}: a ratio metric needs threshold_s for Wardwatch")
        window_minutes = notes.get(ANNOTATION_PREFIX + "window_minutes")
        if window_minutes is None and slo.time_slice_window is not None:
            seconds = slo.time_slice_window.to_timedelta().total_seconds()
            if seconds % 60:
                raise ValueError(f"SLO {slo.slo}: timeSliceWindow {slo.time_slice_window} is not "
                                 "whole minutes")
            window_minutes = str(int(seconds // 60))
        out.append(ObjectiveConfig(
            name=slo.name, workflow=notes.get(ANNOTATION_PREFIX + "workflow") or workflow
            or slo.service, threshold_s=threshold, target=slo.target,
            periods=_list(notes.get(ANNOTATION_PREFIX + "periods")),
            sites=_list(notes.get(ANNOTATION_PREFIX + "sites")),
            window_minutes=int(window_minutes or 15), budgeting_method=slo.budgeting_method,
            time_slice_target=slo.time_slice_target, description=slo.description,
            apdex_t_s=(float(notes[ANNOTATION_PREFIX + "apdex_t_s"])
                       if ANNOTATION_PREFIX + "apdex_t_s" in notes else None),
            compliance_window=str(slo.window), rolling=slo.rolling,
        ))
    return out


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:63].strip("-") or "objective"


def objectives_to_openslo(
    objectives: Sequence[ObjectiveConfig], service: str = "epr", timezone: str = "UTC"
) -> str:
    """Wardwatch's objectives as OpenSLO v1 ``SLO`` documents (one YAML stream).

    Args:
        objectives: the experience objectives.
        service: the OpenSLO ``service`` they belong to.
        timezone: the calendar's time zone for calendar windows.
    """
    documents = []
    for o in objectives:
        annotations = {ANNOTATION_PREFIX + "workflow": o.workflow,
                       ANNOTATION_PREFIX + "window_minutes": str(o.window_minutes)}
        if o.periods:
            annotations[ANNOTATION_PREFIX + "periods"] = ",".join(o.periods)
        if o.sites:
            annotations[ANNOTATION_PREFIX + "sites"] = ",".join(o.sites)
        if o.apdex_t_s is not None:
            annotations[ANNOTATION_PREFIX + "apdex_t_s"] = repr(o.apdex_t_s)
        window: dict[str, Any] = {"duration": o.compliance_window, "isRolling": o.rolling}
        if not o.rolling:
            window["calendar"] = {"startTime": "2020-01-01 00:00:00", "timeZone": timezone}
        objective: dict[str, Any] = {"displayName": o.name, "op": "lte", "value": o.threshold_s,
                                     "target": o.target}
        if o.budgeting_method != "Occurrences":
            objective["timeSliceWindow"] = f"{o.window_minutes}m"
        if o.budgeting_method == "Timeslices":
            objective["timeSliceTarget"] = o.time_slice_target
        documents.append({
            "apiVersion": "openslo/v1",
            "kind": "SLO",
            "metadata": {"name": _slug(o.name), "displayName": o.name, "annotations": annotations},
            "spec": {
                "description": o.description or (
                    f"{o.target:.0%} of {o.workflow} runs wait at most {o.threshold_s:g} s"
                    + (f" in {', '.join(o.periods)}" if o.periods else "")
                    + f", judged per {o.window_minutes}-minute window per site."),
                "service": service,
                "indicator": {
                    "metadata": {"name": _slug(f"{o.workflow}-waiting"),
                                 "displayName": f"Waiting time of {o.workflow} runs (s)"},
                    "spec": {"thresholdMetric": {"metricSource": {
                        "type": "wardwatch",
                        "spec": {"workflow": o.workflow, "measure": "waiting_s"},
                    }}},
                },
                "timeWindow": [window],
                "budgetingMethod": o.budgeting_method,
                "objectives": [objective],
            },
        })
    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True)
