"""The month's report for managers: the SLA as the contract computes it beside the experience.

Plain words first (met or breached; where users waited and how long; which step; what changed),
figures after, each with its sample count, each Apdex with its T. :func:`build_report` computes
it; :func:`to_markdown`, :func:`to_html` and :func:`to_json` render it.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.apdex import apdex
from analysis.budget import calendar_month
from analysis.calendar import ClinicalCalendar
from analysis.changes import change_impact
from analysis.config import ChangeEventConfig, ObjectiveConfig, SLAConfig, TaskVolumeConfig
from analysis.objectives import ObjectiveResult, evaluate_objective
from analysis.sla import SLAResult, evaluate_sla, parse_month, sla_window
from store.redact import spreadsheet_safe
from analysis.store import FrameCache, Store
from analysis.watermelon import Finding, find_watermelons

__all__ = [
    "REPORT_FORMATS", "Report", "build_report", "render", "to_csv", "to_html", "to_json", "to_markdown",
]

REPORT_FORMATS = ("md", "html", "json", "csv")


@dataclass(frozen=True)
class Report:
    """The month's SLA-versus-experience report.

    Attributes:
        month: ``YYYY-MM``.
        timezone: the zone the month (and the objectives' window) is reckoned in.
        start: the month's start (UTC).
        end: its end, exclusive (UTC).
        generated_at: when the report was computed (UTC).
        simulated: some of the month's runs are simulated history, not measurements.
        headline: the plain-words summary, one sentence per item (SLAs, objectives, missed
            probe slots, findings, changes).
        slas: each SLA's result.
        objectives: each objective's result.
        apdex: one row per workflow: ``workflow, t_s, apdex, samples, rating``.
        findings: watermelon and reverse findings.
        changes: the before/after comparison of each change in the month (one frame each).
        change_events: the changes, in the order of ``changes``.
    """

    month: str
    timezone: str
    start: dt.datetime
    end: dt.datetime
    generated_at: dt.datetime
    simulated: bool
    headline: list[str]
    slas: list[SLAResult]
    objectives: list[ObjectiveResult]
    apdex: pd.DataFrame
    findings: list[Finding]
    changes: list[pd.DataFrame] = field(default_factory=list)
    change_events: list[ChangeEventConfig] = field(default_factory=list)


def _apdex_table(store: Store | FrameCache, objectives: Sequence[ObjectiveConfig], start: dt.datetime,
                 end: dt.datetime) -> pd.DataFrame:
    rows = []
    seen: set[str] = set()
    for objective in objectives:
        if objective.workflow in seen:
            continue
        seen.add(objective.workflow)
        runs = store.runs(start, end, workflow=objective.workflow)
        a = apdex(runs["waiting_s"].astype("float64").fillna(np.inf).to_numpy(), objective.apdex_t,
                  failed=(runs["status"].astype(str) != "ok").to_numpy())
        rows.append({"workflow": objective.workflow, "t_s": a.t_s, "apdex": a.display,
                     "samples": a.samples, "rating": a.rating})
    return pd.DataFrame(rows, columns=["workflow", "t_s", "apdex", "samples", "rating"])


def _change_sentence(change: ChangeEventConfig, impact: pd.DataFrame) -> str:
    when = change.at.astimezone(dt.UTC).strftime("%d %b %H:%M UTC")
    moved = impact[impact["significant"] & (impact["median_ratio"] > 1)]
    if moved.empty:
        return f"{change.title} ({when}): no significant change in waiting time."
    worst = moved.sort_values("median_ratio", ascending=False).iloc[0]
    step = (f", mostly in {worst['dominant_step']} (+{worst['dominant_step_delta_s']:.2f} s)"
            if worst["dominant_step"] else "")
    others = len(moved) - 1
    tail = f"; {others} other workflow-site pair(s) also slower" if others else ""
    return (
        f"{change.title} ({when}): {worst['workflow']} at {worst['site']} went from a median of "
        f"{worst['before_median_s']:.2f} s to {worst['after_median_s']:.2f} s "
        f"(p90 {worst['before_p90_s']:.2f} s to {worst['after_p90_s']:.2f} s; "
        f"{int(worst['before_runs'])} and {int(worst['after_runs'])} runs; "
        f"p={_p_text(worst['p_value'])}){step}{tail}."
    )


def _p_text(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def build_report(
    store: Store | FrameCache,
    slas: Sequence[SLAConfig],
    objectives: Sequence[ObjectiveConfig],
    calendar: ClinicalCalendar | None,
    month: str,
    changes: Sequence[ChangeEventConfig] = (),
    task_volumes: Sequence[TaskVolumeConfig] = (),
    timezone: str = "UTC",
    base_dir: Path | None = None,
    change_window: dt.timedelta = dt.timedelta(days=7),
    now: dt.datetime | None = None,
) -> Report:
    """Compute the month's report.

    Args:
        store: the store.
        slas: the SLAs (each judged over its own compliance window ending with the month).
        objectives: the experience objectives (judged over the calendar month in ``timezone``).
        calendar: the clinical calendar.
        month: ``YYYY-MM``.
        changes: change events; those inside the month are compared before and after.
        task_volumes: tasks per day, to scale clinician time lost.
        timezone: the zone the month is reckoned in for objectives and changes (the dashboard's).
        base_dir: where relative files named in the SLAs are read from (the config file's
            directory).
        change_window: each side of a change's before/after comparison.
        now: the generation time (defaults to the current time).

    Raises:
        ValueError: ``month`` is not ``YYYY-MM``.
    """
    year, number = parse_month(month)
    start, end = calendar_month(year, number, timezone)
    store = store if isinstance(store, FrameCache) else FrameCache(store)
    # Findings first: they judge each SLA in one pass over the requests with the figures of the
    # scopes they explain; the SLA and objective results below are then read from the cache.
    findings = find_watermelons(store, slas, objectives, calendar, month=month,
                                task_volumes=task_volumes, base_dir=base_dir)
    sla_results = [
        evaluate_sla(store, sla, *sla_window(sla, month=month), base_dir=base_dir) for sla in slas
    ]
    objective_results = [evaluate_objective(store, o, calendar, start, end) for o in objectives]
    in_month = [c for c in changes if start <= c.at.astimezone(dt.UTC) < end]
    impacts = [change_impact(store, c, window=change_window) for c in in_month]
    simulated = bool(store.sql(
        "SELECT coalesce(bool_or(simulated), false) AS s FROM runs WHERE start >= ? AND start < ?",
        [start, end],
    )["s"].iloc[0])

    headline: list[str] = []
    if simulated:
        headline.append("This month's data includes simulated history from the testbed's latency "
                        "model, not measurements of a real EPR.")
    for r in sla_results:
        state = {True: "met", False: "breached", None: "not measured (no requests)"}[r.met]
        headline.append(f"SLA '{r.name}' ({r.wording}): {state}, {r.display}.")
    for o in objective_results:
        if o.met is None:
            headline.append(f"Experience objective '{o.objective.name}': no runs this month.")
            continue
        breached = o.breached_scopes
        if breached.empty:
            headline.append(f"Experience objective '{o.objective.name}': met everywhere "
                            f"({o.overall.value:.0%} against {o.objective.target:.0%}, "
                            f"{o.overall.samples} runs).")
        else:
            where = "; ".join(
                f"{row.site}" + ("" if row.period == "all hours" else f" in {row.period}")
                + f" ({row.value:.0%}, p90 {row.p90_s:.1f} s, n={row.runs})"
                for row in breached.itertuples()
            )
            headline.append(f"Experience objective '{o.objective.name}': breached at {where}.")
    missed = store.missed_slots(start, end)
    if len(missed):
        reasons = missed["reason"].fillna("unknown").value_counts()
        detail = ", ".join(f"{reason.replace('_', ' ')}: {count}" for reason, count in reasons.items())
        headline.append(f"The probes missed {len(missed)} scheduled runs this month ({detail}); "
                        "the figures above leave those moments out.")
    headline += [f.summary for f in findings]
    headline += [_change_sentence(c, i) for c, i in zip(in_month, impacts, strict=True)]
    return Report(
        month=f"{year:04d}-{number:02d}", timezone=timezone, start=start, end=end,
        generated_at=(now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC), simulated=simulated,
        headline=headline, slas=sla_results, objectives=objective_results,
        apdex=_apdex_table(store, objectives, start, end), findings=findings, changes=impacts,
        change_events=in_month,
    )


# -- Rendering -----------------------------------------------------------------------------------


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return fmt.format(float(value))
    return str(value)


def _tables(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """The figures, as (title, header, rows) tables shared by the Markdown and HTML renderers."""
    tables = []
    tables.append(("SLAs as the contract computes them",
                   ["SLA", "terms", "value", "target", "met", "budget left", "requests",
                    "excluded", "outside hours", "source"],
                   [[r.name, r.wording, _num(r.value, "{:.4f}"), _num(r.target, "{:g}"),
                     {True: "met", False: "breached", None: "n/a"}[r.met],
                     _num(r.budget_remaining, "{:.0%}"), str(r.samples), str(r.excluded),
                     str(r.outside_service_hours), r.data_source] for r in report.slas]))
    rows = []
    for o in report.objectives:
        for s in o.scopes.itertuples():
            rows.append([o.objective.name, str(s.site), str(s.period), str(s.runs),
                         _num(s.share_good, "{:.1%}"), _num(s.p50_s),
                         _num(s.p90_s) + (" (few runs)" if s.p90_small_sample else ""),
                         f"{s.good_windows}/{s.windows}", _num(s.value, "{:.1%}"),
                         {True: "met", False: "breached"}.get(s.met, "n/a"), str(s.apdex)])
    tables.append(("Experience objectives per site and period",
                   ["objective", "site", "period", "runs", "good runs", "p50 s", "p90 s",
                    "good windows", "value", "met", "Apdex [T]"], rows))
    tables.append(("Apdex per workflow", ["workflow", "Apdex [T]", "runs", "rating"],
                   [[str(r.workflow), str(r.apdex), str(r.samples), str(r.rating or "NS")]
                    for r in report.apdex.itertuples()]))
    rows = []
    for f in report.findings:
        for lens in f.lenses:
            rows.append([f.kind, f.workflow, f.site or "all sites", f.period, lens.name,
                         lens.sla or "", lens.text])
    tables.append(("Lenses: why the SLA could not see it",
                   ["finding", "workflow", "site", "period", "lens", "SLA", "figures"], rows))
    rows = []
    for impact in report.changes:
        for c in impact.itertuples():
            rows.append([str(c.change), str(c.workflow), str(c.site),
                         f"{c.before_runs} / {c.after_runs}",
                         f"{_num(c.before_median_s)} -> {_num(c.after_median_s)}",
                         f"{_num(c.before_p90_s)} -> {_num(c.after_p90_s)}",
                         _num(c.cliffs_delta), _p_text(c.p_value),
                         "" if pd.isna(c.dominant_step) else str(c.dominant_step)])
    tables.append(("Changes: before and after",
                   ["change", "workflow", "site", "runs before / after", "median s", "p90 s",
                    "Cliff's delta", "p", "step"], rows))
    return tables


def _title(report: Report) -> str:
    return f"Wardwatch report for {report.month}: SLA and experience"


def to_markdown(report: Report) -> str:
    """The report as Markdown: plain words first, then the figures."""
    out = [f"# {_title(report)}", "",
           f"Month {report.month} ({report.timezone}); generated "
           f"{report.generated_at:%Y-%m-%d %H:%M} UTC.", "", "## In plain words", ""]
    out += [f"- {line}" for line in report.headline] + [""]
    out += ["## Figures", ""]
    for title, header, rows in _tables(report):
        out += [f"### {title}", ""]
        if not rows:
            out += ["None.", ""]
            continue
        cells = [[c.replace("|", "\\|") for c in row] for row in rows]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        out += ["| " + " | ".join(row) + " |" for row in cells]
        out.append("")
    out.append("Percentiles by linear interpolation over pooled samples; Apdex as specification "
               "v1.1 (T in brackets, * fewer than 100 samples).")
    return "\n".join(out) + "\n"


def to_html(report: Report) -> str:
    """The report as a standalone HTML page (no scripts, no external resources)."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(_title(report))}</title>",
             "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
             "text-align:left}</style></head><body>",
             f"<h1>{e(_title(report))}</h1>",
             f"<p>Month {e(report.month)} ({e(report.timezone)}); generated "
             f"{report.generated_at:%Y-%m-%d %H:%M} UTC.</p>",
             "<h2>In plain words</h2><ul>"]
    parts += [f"<li>{e(line)}</li>" for line in report.headline]
    parts.append("</ul><h2>Figures</h2>")
    for title, header, rows in _tables(report):
        parts.append(f"<h3>{e(title)}</h3>")
        if not rows:
            parts.append("<p>None.</p>")
            continue
        parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header)
                     + "</tr></thead><tbody>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if math.isnan(float(value)) or math.isinf(float(value)) else float(value)
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, dt.datetime | pd.Timestamp):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [_plain(dict(row)) for row in frame.to_dict(orient="records")]


def to_json(report: Report) -> str:
    """The report as JSON (NaN as ``null``, times as ISO 8601)."""
    document = {
        "month": report.month, "timezone": report.timezone, "start": report.start,
        "end": report.end, "generated_at": report.generated_at, "simulated": report.simulated,
        "headline": report.headline,
        "slas": [{
            "name": r.name, "wording": r.wording, "metric": r.metric, "value": r.value,
            "target": r.target, "met": r.met, "budget_remaining": r.budget_remaining,
            "samples": r.samples, "excluded": r.excluded,
            "outside_service_hours": r.outside_service_hours, "data_source": r.data_source,
            "window_start": r.window_start, "window_end": r.window_end,
            "budgeting_method": r.budget.method if r.budget else None,
        } for r in report.slas],
        "objectives": [{
            "name": o.objective.name, "workflow": o.objective.workflow,
            "threshold_s": o.objective.threshold_s, "target": o.objective.target,
            "budgeting_method": o.overall.method, "value": o.overall.value,
            "met": o.met, "samples": o.overall.samples, "apdex": o.apdex.display,
            "scopes": _records(o.scopes),
        } for o in report.objectives],
        "apdex": _records(report.apdex),
        "findings": [{
            "kind": f.kind, "sla": f.sla.name, "slas": [r.name for r in f.slas],
            "objective": f.objective, "workflow": f.workflow,
            "site": f.site, "period": f.period, "summary": f.summary,
            "sla_value": f.sla.value, "sla_samples": f.sla.samples,
            "experience": f.experience, "dominant_step": f.dominant_step,
            "dominant_step_share": f.dominant_step_share,
            "lenses": [{"name": lens.name, "sla": lens.sla, "text": lens.text,
                        "figures": lens.figures}
                       for lens in f.lenses],
            "time_lost": None if f.time_lost is None else {
                "observed_s": f.time_lost.observed_s, "runs": f.time_lost.runs,
                "tasks": f.time_lost.tasks, "scaled_hours": f.time_lost.scaled_hours,
                "assumption": f.time_lost.assumption,
            },
        } for f in report.findings],
        "changes": [{"title": c.title, "at": c.at, "workflows": c.workflows,
                     "impact": _records(i)} for c, i in zip(report.change_events, report.changes,
                                                            strict=True)],
    }
    return json.dumps(_plain(document), indent=2, allow_nan=False) + "\n"


def to_csv(report: Report) -> str:
    """The report's figures as one CSV: a ``table`` column names the table each row belongs to."""
    out = io.StringIO()
    writer = csv.writer(out)
    for title, header, rows in _tables(report):
        writer.writerow(["table", *header])
        writer.writerows([title, *map(spreadsheet_safe, row)] for row in rows)  # no formulas run
        writer.writerow([])
    return out.getvalue()


def render(report: Report, fmt: str) -> str:
    """The report in ``fmt``: ``md``, ``html`` or ``json``.

    Raises:
        ValueError: another format.
    """
    renderers = {"md": to_markdown, "html": to_html, "json": to_json, "csv": to_csv}
    if fmt not in renderers:
        raise ValueError(f"format is one of {', '.join(REPORT_FORMATS)}, not {fmt!r}")
    return renderers[fmt](report)
