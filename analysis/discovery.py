"""Discovery: the waits, gaps and failures nobody configured, found in the runs themselves.

Objectives say what a trust promised; they must not limit what Wardwatch sees. This module looks
at every workflow x site over the hours of the week (the site's local time) and finds:

- **recurring waits** (:func:`recurring_waits`): half hours of the week (weekdays and weekends
  apart) where runs wait beyond the workflow's threshold T more often than chance explains, or
  where the typical run departs from the site's own usual, on most of the days observed; merged
  into bands ("weekdays 13:30-17:00") and, where the slow runs fall at the same minutes of every
  half hour or hour, recognised as periodic ("for about 4 minutes every half hour");
- **site gaps** (:func:`site_gaps`): a site where every request takes about the same extra time
  as at the other sites, whatever the request: a network link's round trips, not the server;
- **failure episodes** (:func:`failure_episodes`): runs failing together (an outage), with the
  time and the duration the probe's runs bound;
- **step growth** (:func:`step_growth`): which step, and which layer of it (network: DNS,
  connect, TLS; server: time to first byte; transfer), grew against its own baseline.

Every judgement leaves out runs the probe stopped itself (``interrupted``). The thresholds and
defaults are named constants below and documented in ``docs/findings.md``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.calendar import ClinicalCalendar
from analysis.objectives import judged_runs

__all__ = [
    "BIN_MINUTES",
    "Band",
    "FailureEpisode",
    "SiteGap",
    "StepGrowth",
    "failure_episodes",
    "gap_runs",
    "growth_from_medians",
    "local_runs",
    "recurring_waits",
    "run_steps",
    "site_gaps",
    "step_growth",
]

BIN_MINUTES = 30  # the hours of the week are looked at in half hours (local time)
MIN_SLOW_RUNS = 3  # fewer slow runs than this in a half hour is never a pattern
MIN_SLOW_SHARE = 0.10  # one run in ten beyond T: what a 90% objective allows, and no more
# A half hour's share beyond T must be this unlikely (a Chernoff bound on the binomial tail)
# given the workflow's background share at the site (the lower quartile of the half hours'
# shares, at least 1%: a wait that fills most of the hours observed still stands out).
MAX_CHANCE = 1e-3
MIN_BACKGROUND = 0.01
BACKGROUND_QUANTILE = 0.25
USUAL_FACTOR = 1.5  # a half hour departs from the usual when its median is this many times...
USUAL_MARGIN_S = 0.5  # ...and this much above the site's median for the workflow
MIN_RECURRENCE = 0.5  # a band recurs when it shows on at least half the days observed...
MIN_DAYS = 2  # ...and on at least this many days
EVERY_DAY_SHARE = 0.8  # "every weekday" when it shows on this share of the weekdays observed
PERIODS_MIN = (30, 60)  # periodic patterns looked for: every half hour, every hour
PERIODIC_INSIDE = 0.6  # inside the recurring minutes, at least this share of runs is slow...
PERIODIC_OUTSIDE = 0.1  # ...and outside them at most this share
GAP_MIN_RATIO = 1.15  # a site gap: the site's median run this much above the others'...
GAP_MIN_S = 0.2  # ...and this many seconds
GAP_MAX_SPREAD = 0.5  # the per-request gaps agree within this (IQR / median): a constant delay
GAP_MIN_RUNS = 20
FAILURE_GAP = pd.Timedelta(minutes=20)  # failures further apart are separate episodes
FAILURE_MIN_RUNS = 2
FAILURE_MIN_SHARE = 0.5  # of the runs between the first and the last failure
DAY_CLASSES = ("weekday", "weekend")
LAYERS = {"network": ("dns_s", "connect_s", "tls_s"), "server": ("ttfb_s",),
          "transfer": ("transfer_s",)}
PHASES = tuple(c for cols in LAYERS.values() for c in cols)


def local_runs(runs: pd.DataFrame, calendar: ClinicalCalendar | None,
               thresholds_s: Mapping[str, float]) -> pd.DataFrame:
    """The judged runs with their site's local time: ``minute`` (of the day, fractional),
    ``weekday`` (0 = Monday), ``date`` (the local day, as its midnight without a zone),
    ``day_class`` (weekday or weekend, categorical), ``bin`` (the half hour), ``threshold_s``
    and ``over`` (an ok run waiting beyond T); in the order of ``runs``, indexed 0..n-1 (a
    band names its runs by those positions).

    The columns are added to the runs as arrays (no copy of the frame, no Python objects per
    run: a month at 10M spans is 1.25M runs)."""
    frame = judged_runs(runs).reset_index(drop=True)
    minute = np.zeros(len(frame), dtype=float)
    weekday = np.zeros(len(frame), dtype=np.int64)
    day = np.zeros(len(frame), dtype="datetime64[us]")
    for site, where in frame.groupby("site", sort=False).indices.items():
        try:
            zone = calendar.timezone(str(site)) if calendar is not None else dt.UTC
        except ValueError:  # a site the configuration does not know: its data still counts
            zone = dt.UTC
        local = pd.to_datetime(frame["start"].iloc[where]).dt.tz_convert(zone)
        minute[where] = (local.dt.hour * 60 + local.dt.minute + local.dt.second / 60).to_numpy(dtype=float)
        weekday[where] = local.dt.day_of_week.to_numpy()
        day[where] = local.dt.tz_localize(None).dt.normalize().to_numpy(dtype="datetime64[us]")
    frame["minute"] = minute
    frame["weekday"] = weekday
    frame["date"] = day
    frame["day_class"] = pd.Categorical.from_codes((weekday >= 5).astype(np.int8), DAY_CLASSES)
    frame["bin"] = (minute // BIN_MINUTES).astype(np.int64)
    frame["threshold_s"] = frame["workflow"].map(thresholds_s).astype(float)
    ok = (frame["status"] == "ok").to_numpy(dtype=bool, na_value=False)
    frame["ok"] = ok
    frame["over"] = ok & (frame["waiting_s"].to_numpy(dtype=float, na_value=np.nan)
                          > frame["threshold_s"].to_numpy(dtype=float))
    return frame


def _kl(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Kullback-Leibler divergence of Bernoulli(q) from Bernoulli(p), for q > p."""
    q = np.clip(q, 1e-12, 1 - 1e-12)
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return q * np.log(q / p) + (1 - q) * np.log((1 - q) / (1 - p))


@dataclass(frozen=True)
class Periodic:
    """Slow runs at the same minutes of every ``every_min`` minutes inside a band.

    Attributes:
        every_min: 30 or 60.
        first_minute: the clock minute (0-59) the slow minutes start at, first in the hour.
        duration_min: about how long each spell lasts, or ``None`` when the probe's cadence is
            too coarse to tell.
        cadence_min: the probe's typical minutes between runs of one job.
    """

    every_min: int
    first_minute: int
    duration_min: float | None
    cadence_min: float


@dataclass(frozen=True)
class Band:
    """A recurring wait of one workflow at one site: a band of the week's hours.

    Attributes:
        workflow, site: ids.
        day_class: ``weekday``, ``weekend`` or ``day`` (both).
        start_min, end_min: local minutes of the day, ``[start, end)``.
        threshold_s: T; usual_s: the site's median waiting for the workflow over the window.
        runs: runs in the band; slow: of them slow (beyond T, or departing from the usual).
        beyond: of them beyond T.
        slow_median_s: the slow runs' median waiting; median_s: all the band's runs' median.
        days_observed, days_affected: local dates with runs in the band, and with slow runs.
        first: UTC start of the first slow run.
        periodic: the periodic shape, if any.
        slow_rows: the slow runs, as positions in the :func:`local_runs` frame the band was
            found in; rows: all the band's runs, likewise.
        lost_s: clinician time lost, as for a watermelon: the sum over the band's runs of
            max(0, waiting - T).
        excess_s: sum over the slow runs of their waiting beyond the lower of T and the usual's
            limit (clinician seconds, as the probe sampled them).
    """

    workflow: str
    site: str
    day_class: str
    start_min: int
    end_min: int
    threshold_s: float
    usual_s: float
    runs: int
    slow: int
    beyond: int
    slow_median_s: float
    median_s: float
    days_observed: tuple[dt.date, ...]
    days_affected: tuple[dt.date, ...]
    first: dt.datetime
    periodic: Periodic | None
    slow_rows: np.ndarray = field(repr=False, compare=False)
    rows: np.ndarray = field(repr=False, compare=False)
    excess_s: float = 0.0
    lost_s: float = 0.0

    @property
    def hours(self) -> tuple[int, int]:
        return self.start_min, self.end_min


def _usual_limit(usual_s: float) -> float:
    return max(usual_s * USUAL_FACTOR, usual_s + USUAL_MARGIN_S)


def _cadence_min(runs: pd.DataFrame) -> float:
    """The typical minutes between consecutive runs of one job (the probe's cadence)."""
    starts = pd.to_datetime(runs["start"]).sort_values()
    gaps = starts.diff().dropna().dt.total_seconds() / 60
    return float(gaps.median()) if len(gaps) else math.inf


def _periodic(band_runs: pd.DataFrame, slow: np.ndarray, start_min: int,
              cadence_min: float) -> Periodic | None:
    """Whether the slow runs fall at the same minutes of every half hour (or hour): the minutes
    (of the cycle, from the band's start) where most runs are slow are contiguous, cover at most
    a third of the cycle, and the runs at the other minutes are rarely slow."""
    if slow.sum() < MIN_SLOW_RUNS or slow.all():
        return None
    minutes = band_runs["minute"].to_numpy(dtype=float)
    for every in PERIODS_MIN:
        cycle = np.floor((minutes - start_min) % every).astype(int)
        n = np.bincount(cycle, minlength=every)
        k = np.bincount(cycle, weights=slow.astype(float), minlength=every)
        sampled = np.flatnonzero(n > 0)
        hot = k[sampled] / n[sampled] >= 0.5
        if not hot.any() or hot.all():
            continue
        # Rotate the sampled minutes to start just after a quiet one: the hot ones must be one run.
        turn = int(np.flatnonzero(~hot)[0]) + 1
        hot, order = np.roll(hot, -turn), np.roll(sampled, -turn)
        first_hot, last_hot = int(np.flatnonzero(hot)[0]), int(np.flatnonzero(hot)[-1])
        if not hot[first_hot:last_hot + 1].all():
            continue
        first, last = int(order[first_hot]), int(order[last_hot])
        span_min = (last - first) % every
        if span_min + 1 > every / 3:
            continue
        inside = np.isin(cycle, order[first_hot:last_hot + 1])
        if slow[inside].mean() < PERIODIC_INSIDE or slow[~inside].mean() > PERIODIC_OUTSIDE:
            continue
        duration = span_min + cadence_min if cadence_min <= every / 4 else None
        return Periodic(every, (start_min + first) % 60 % every, duration, cadence_min)
    return None


def recurring_waits(frame: pd.DataFrame) -> list[Band]:
    """The recurring waits in ``frame`` (from :func:`local_runs`), per workflow x site.

    A half hour (of weekdays, or of weekends) is flagged when at least ``MIN_SLOW_SHARE`` of its
    runs (and ``MIN_SLOW_RUNS``) wait beyond T and chance does not explain it (``MAX_CHANCE``
    against the background share), or when its median departs from the site's usual (``USUAL_*``).
    Adjacent flagged half hours form a band; a band is kept when its slow runs recur
    (``MIN_RECURRENCE`` of the days observed, at least ``MIN_DAYS``).
    """
    bands: list[Band] = []
    if frame.empty:
        return bands
    columns = ["start", "workflow", "site", "ok", "over", "waiting_s", "threshold_s", "day_class",
               "bin", "minute", "date"]
    for (workflow, site), runs in frame[columns].groupby(["workflow", "site"], sort=True, observed=True):
        ok = runs["ok"].to_numpy()
        waits = runs["waiting_s"].to_numpy(dtype=float)
        if not ok.any():
            continue
        usual = float(np.nanmedian(waits[ok]))
        limit = _usual_limit(usual)
        slow_all = runs["over"].to_numpy() | (ok & (waits > limit))
        runs = runs.assign(slow=slow_all, ok_wait=np.where(ok, waits, np.nan))
        table = runs.groupby(["day_class", "bin"], sort=True, observed=True).agg(
            n=("slow", "size"), over=("over", "sum"), median_s=("ok_wait", "median"))
        share = table["over"] / table["n"]
        background = max(MIN_BACKGROUND, float(share.quantile(BACKGROUND_QUANTILE)))
        chance = np.where(share > background,
                          table["n"] * _kl(share.to_numpy(), np.full(len(share), background)), 0)
        beyond = ((table["over"] >= MIN_SLOW_RUNS) & (share >= MIN_SLOW_SHARE)
                  & (chance >= -math.log(MAX_CHANCE)))
        departs = (table["median_s"] > limit) & (table["n"] >= MIN_SLOW_RUNS)
        flagged = table[(beyond | departs).to_numpy()].reset_index()
        cadence = min(_cadence_min(g) for _, g in runs.groupby("day_class", observed=True))
        threshold = float(runs["threshold_s"].iloc[0])
        for day_class, rows in flagged.groupby("day_class", sort=True, observed=True):
            bins = rows["bin"].to_numpy()
            # Half hours without any run (a sparse cadence) do not break a band.
            sampled = set(table.loc[day_class].index) if day_class in table.index else set()
            edges = np.flatnonzero([any(b in sampled for b in range(lo + 1, hi))
                                    for lo, hi in zip(bins[:-1], bins[1:], strict=True)])
            for chunk in np.split(bins, edges + 1):
                band = _band(runs, str(workflow), str(site), str(day_class), int(chunk[0]),
                             int(chunk[-1]) + 1, threshold, usual, limit, cadence)
                if band is not None:
                    bands.append(band)
    return _join_day_classes(bands)


def _band(runs: pd.DataFrame, workflow: str, site: str, day_class: str, first_bin: int,
          end_bin: int, threshold: float, usual: float, limit: float, cadence: float
          ) -> Band | None:
    inside = ((runs["day_class"] == day_class) & (runs["bin"] >= first_bin)
              & (runs["bin"] < end_bin)).to_numpy()
    band_runs = runs[inside]
    slow = band_runs["slow"].to_numpy(dtype=bool)
    if slow.sum() < MIN_SLOW_RUNS:
        return None
    per_day = band_runs.groupby("date")["slow"].agg(["size", "sum"])
    affected = per_day[(per_day["sum"] >= 1) & (per_day["sum"] / per_day["size"] >= MIN_SLOW_SHARE)]
    if len(affected) < MIN_DAYS or len(affected) < MIN_RECURRENCE * len(per_day):
        return None
    start_min, end_min = first_bin * BIN_MINUTES, end_bin * BIN_MINUTES
    waits = band_runs["waiting_s"].to_numpy(dtype=float)
    floor = min(threshold, limit)
    return Band(
        workflow=workflow, site=site, day_class=day_class, start_min=start_min, end_min=end_min,
        threshold_s=threshold, usual_s=usual, runs=len(band_runs), slow=int(slow.sum()),
        beyond=int(band_runs["over"].sum()), slow_median_s=float(np.median(waits[slow])),
        median_s=float(np.nanmedian(waits)),
        days_observed=tuple(d.date() for d in sorted(per_day.index)),
        days_affected=tuple(d.date() for d in sorted(affected.index)),
        first=pd.Timestamp(band_runs.loc[band_runs["slow"], "start"].min()).to_pydatetime(),
        periodic=_periodic(band_runs, slow, start_min, cadence),
        slow_rows=band_runs.index.to_numpy()[slow], rows=band_runs.index.to_numpy(),
        excess_s=float(np.maximum(0.0, waits[slow] - floor).sum()),
        lost_s=float(np.nansum(np.maximum(0.0, waits - threshold))),
    )


def _join_day_classes(bands: list[Band]) -> list[Band]:
    """A band found on weekdays and on weekends at the same hours is one band, every day."""
    out: list[Band] = []
    by_key: dict[tuple[str, str, int, int], list[Band]] = {}
    for band in bands:
        by_key.setdefault((band.workflow, band.site, band.start_min, band.end_min), []).append(band)
    for group in by_key.values():
        if len(group) == 2:
            a, b = group
            out.append(Band(
                workflow=a.workflow, site=a.site, day_class="day", start_min=a.start_min,
                end_min=a.end_min, threshold_s=a.threshold_s, usual_s=a.usual_s,
                runs=a.runs + b.runs, slow=a.slow + b.slow, beyond=a.beyond + b.beyond,
                slow_median_s=(a.slow_median_s * a.slow + b.slow_median_s * b.slow)
                / (a.slow + b.slow),
                median_s=(a.median_s * a.runs + b.median_s * b.runs) / (a.runs + b.runs),
                days_observed=tuple(sorted(a.days_observed + b.days_observed)),
                days_affected=tuple(sorted(a.days_affected + b.days_affected)),
                first=min(a.first, b.first), periodic=a.periodic if a.periodic == b.periodic
                else None, slow_rows=np.concatenate([a.slow_rows, b.slow_rows]),
                rows=np.concatenate([a.rows, b.rows]), excess_s=a.excess_s + b.excess_s,
                lost_s=a.lost_s + b.lost_s))
        else:
            out.extend(group)
    return out


# -- which step grew ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StepGrowth:
    """The step (and layer) whose time grew most against its own baseline.

    Attributes:
        step: the step, or ``None`` when nothing grew.
        growth_s: its median per run, minus its median per run in the baseline.
        share: its share of the growth summed over the steps that grew.
        layer: ``network``, ``server`` or ``transfer``: the layer of that step that grew most
            (``None`` without phase timings).
        layer_growth_s: that layer's growth in the step, per run.
        steps: every step's growth (seconds per run), for the detail.
    """

    step: str | None
    growth_s: float
    share: float
    layer: str | None
    layer_growth_s: float
    steps: dict[str, float]

    @property
    def majority(self) -> bool:
        """Whether the step holds most (over half) of the growth: only then is it "most"."""
        return self.step is not None and self.share > 0.5


def run_steps(steps: pd.DataFrame) -> pd.DataFrame:
    """Per run and step, the step's time and phases summed (a step may make several requests):
    ``trace_id, step, duration_s, dns_s, connect_s, tls_s, ttfb_s, transfer_s``; computed once
    and shared by every :func:`step_growth`."""
    named = steps[steps["step"].notna()]
    if named.empty:
        return pd.DataFrame(columns=["trace_id", "step", "duration_s", *PHASES])
    return named.groupby(["trace_id", "step"], sort=False, observed=True)[
        ["duration_s", *PHASES]].sum(min_count=1).reset_index()


def step_growth(per_run: pd.DataFrame, affected: Sequence[str], baseline: Sequence[str]
                ) -> StepGrowth:
    """Which step grew: per step, the median (over runs) of its time in the ``affected`` runs
    minus its median in the ``baseline`` runs (the same workflow before a change, or outside the
    band or period). ``per_run`` is :func:`run_steps` of a ``steps`` frame holding both."""
    if per_run.empty or not len(affected) or not len(baseline):
        return growth_from_medians(pd.DataFrame(columns=["role", "step", "duration_s", *PHASES]))
    ids = per_run["trace_id"]
    is_affected = ids.isin(affected).to_numpy()
    is_baseline = ids.isin(baseline).to_numpy() & ~is_affected
    chosen = per_run[is_affected | is_baseline].assign(role=is_affected[is_affected | is_baseline])
    medians = chosen.groupby(["role", "step"], observed=True)[["duration_s", *PHASES]].median()
    return growth_from_medians(medians.reset_index())


def growth_from_medians(medians: pd.DataFrame) -> StepGrowth:
    """:func:`step_growth` from per ``role`` (True: affected, False: baseline) and ``step``
    medians of the per-run step time (``duration_s``) and of each phase, however computed (in
    pandas, or in DuckDB over the store)."""
    none = StepGrowth(None, math.nan, math.nan, None, math.nan, {})
    if medians.empty or set(medians["role"].astype(bool)) != {True, False}:
        return none
    phases = PHASES
    by_role = medians.assign(role=medians["role"].astype(bool)).set_index(["role", "step"])
    by_role = by_role[["duration_s", *phases]].astype("float64")
    growth = (by_role.loc[True] - by_role.loc[False]).dropna(subset=["duration_s"])
    total = growth["duration_s"].clip(lower=0).sum()
    by_step = {str(k): float(v) for k, v in growth["duration_s"].items()}
    if total <= 0:
        return StepGrowth(None, 0.0, math.nan, None, math.nan, by_step)
    step = str(growth["duration_s"].idxmax())
    row = growth.loc[step]
    layers = {name: float(np.nansum([row.get(c, np.nan) for c in cols]))
              for name, cols in LAYERS.items()}
    layer = max(layers, key=lambda k: layers[k])
    if not all(math.isnan(float(row.get(c, np.nan))) for c in phases) and layers[layer] > 0:
        chosen_layer, layer_s = layer, layers[layer]
    else:
        chosen_layer, layer_s = None, math.nan
    return StepGrowth(step, float(row["duration_s"]), float(row["duration_s"] / total),
                      chosen_layer, layer_s, by_step)


# -- a site behind a slow link -----------------------------------------------------------------

@dataclass(frozen=True)
class SiteGap:
    """A site where every request takes about the same extra time as elsewhere.

    Attributes:
        workflow, site: ids.
        others: the sites compared with.
        site_median_s, others_median_s: median waiting of ok runs, here and at the others.
        per_request_gap_s: the median over request types of (here - the others) per request.
        spread: the gaps' interquartile range over their median (small: constant).
        requests_per_run: median requests a run makes.
        request_types: request types compared.
        runs: ok runs at the site.
        network_s: per request, the network phases' gap (DNS, connect, TLS), when timed.
        first: the first run of the window at the site (UTC).
    """

    workflow: str
    site: str
    others: tuple[str, ...]
    site_median_s: float
    others_median_s: float
    per_request_gap_s: float
    spread: float
    requests_per_run: float
    request_types: int
    runs: int
    network_s: float
    first: dt.datetime

    @property
    def share(self) -> float:
        """The gap's share of the site's median run."""
        return (self.per_request_gap_s * self.requests_per_run) / self.site_median_s


def site_gaps(frame: pd.DataFrame, request_medians: pd.DataFrame,
              network_s: Mapping[tuple[str, str], float] | None = None) -> list[SiteGap]:
    """Sites whose runs are slower than the other sites' by a constant delay on every request.

    Args:
        frame: runs from :func:`local_runs`.
        request_medians: per ``workflow, site, url_template`` the ``median_s`` of the probe's
            successful requests and ``per_run`` (requests a run makes of that type, on
            average), of the runs :func:`gap_runs` chose.
        network_s: per ``(workflow, site)``, the median DNS + connect + TLS time of a step the
            probe timed phases of, in the same runs (none: not timed).

    Like is compared with like: only the half hours of the week in which the site and another
    site both ran the workflow (:func:`gap_runs`), and only with ``GAP_MIN_RUNS`` runs or more.
    """
    found: list[SiteGap] = []
    ok_runs = gap_runs(frame)
    if ok_runs.empty or request_medians.empty:
        return found
    for workflow, wf_runs in ok_runs.groupby("workflow", sort=True):
        sites = sorted(wf_runs["site"].unique())
        if len(sites) < 2:
            continue
        medians = wf_runs.groupby("site")["waiting_s"].median()
        wf_reqs = request_medians[request_medians["workflow"] == workflow]
        per_type = wf_reqs.pivot(index="url_template", columns="site", values="median_s")
        count = wf_reqs.pivot(index="url_template", columns="site", values="per_run")
        for site in sites:
            others = [s for s in sites if s != site]
            here_s = float(medians[site])
            others_s = float(wf_runs.loc[wf_runs["site"] != site, "waiting_s"].median())
            if here_s < others_s * GAP_MIN_RATIO or here_s - others_s < GAP_MIN_S:
                continue
            if site not in per_type or (wf_runs["site"] == site).sum() < GAP_MIN_RUNS:
                continue
            gaps = (per_type[site] - per_type[[o for o in others if o in per_type]].median(axis=1)
                    ).dropna()
            if len(gaps) < 2 or (gaps <= 0).any():
                continue
            median_gap = float(gaps.median())
            spread = float((gaps.quantile(0.75) - gaps.quantile(0.25)) / median_gap)
            if spread > GAP_MAX_SPREAD:
                continue
            site_runs = int((wf_runs["site"] == site).sum())
            network = math.nan
            if network_s and (workflow, site) in network_s:
                elsewhere = [network_s[(workflow, o)] for o in others if (workflow, o) in network_s]
                if elsewhere:
                    network = float(network_s[(workflow, site)] - np.median(elsewhere))
            found.append(SiteGap(
                workflow=str(workflow), site=str(site), others=tuple(others),
                site_median_s=here_s, others_median_s=others_s, per_request_gap_s=median_gap,
                spread=spread, requests_per_run=float(count[site].sum()),
                request_types=len(gaps), runs=site_runs, network_s=network,
                first=pd.Timestamp(wf_runs.loc[wf_runs["site"] == site, "start"].min()
                                   ).to_pydatetime()))
    return found


def gap_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The ok runs a site gap compares: those in half hours of the week in which at least two
    sites ran the workflow (``start, workflow, site, waiting_s``, indexed as in ``frame``)."""
    columns = ["start", "workflow", "site", "waiting_s"]
    if frame.empty:
        return frame[columns]
    ok_runs = frame.loc[frame["ok"].to_numpy(), [*columns, "day_class", "bin"]]
    shared = ok_runs.groupby(["workflow", "day_class", "bin"], observed=True)["site"].transform("nunique") > 1
    return ok_runs.loc[shared.to_numpy(), columns]


# -- failures together -------------------------------------------------------------------------

@dataclass(frozen=True)
class FailureEpisode:
    """Runs failing together: an outage, or a failing dependency.

    Attributes:
        first_failure, last_failure: UTC starts of the first and last failed run.
        last_ok_before, first_ok_after: the nearest successful runs around it (any workflow or
            site), or ``None``.
        failed: failed runs; runs: every run between the first and last failure.
        sites, workflows: those affected.
        statuses: HTTP statuses of the failed steps, most common first; error_types likewise.
        trace_ids: the failed runs.
    """

    first_failure: dt.datetime
    last_failure: dt.datetime
    last_ok_before: dt.datetime | None
    first_ok_after: dt.datetime | None
    failed: int
    runs: int
    sites: tuple[str, ...]
    workflows: tuple[str, ...]
    statuses: tuple[int, ...]
    error_types: tuple[str, ...]
    trace_ids: tuple[str, ...] = field(repr=False)

    @property
    def start(self) -> dt.datetime:
        """The estimated start: midway between the last success and the first failure."""
        if self.last_ok_before is None:
            return self.first_failure
        return self.last_ok_before + (self.first_failure - self.last_ok_before) / 2

    @property
    def end(self) -> dt.datetime:
        """The estimated end: midway between the last failure and the first success after it."""
        if self.first_ok_after is None:
            return self.last_failure
        return self.last_failure + (self.first_ok_after - self.last_failure) / 2

    @property
    def duration(self) -> dt.timedelta:
        return self.end - self.start


def failure_episodes(runs: pd.DataFrame, failed_requests: pd.DataFrame | None = None
                     ) -> list[FailureEpisode]:
    """Failed runs close in time (``FAILURE_GAP``), at least ``FAILURE_MIN_RUNS`` of them and
    ``FAILURE_MIN_SHARE`` of every run between the first and the last: the episodes.

    ``failed_requests``: ``trace_id, http_status`` of the probe's failed requests (the statuses
    the EPR answered with)."""
    runs = judged_runs(runs)
    if runs.empty:
        return []
    columns = ["trace_id", "start", "workflow", "site", "status", "error_type"]
    runs = runs[columns].sort_values("start", kind="stable").reset_index(drop=True)
    failed = (runs["status"] != "ok").to_numpy(dtype=bool, na_value=True)
    if not failed.any():
        return []
    starts = pd.to_datetime(runs["start"])
    fail_at = starts[failed]
    new = fail_at.diff() > FAILURE_GAP
    episode = new.cumsum().to_numpy()
    positions = np.flatnonzero(failed)
    found = []
    site_of = pd.factorize(runs["site"])[0]  # codes, not a string per run
    for number in np.unique(episode):
        where = positions[episode == number]
        lo, hi = int(where[0]), int(where[-1])
        # Only the sites that failed bound it: another site's success says nothing of a link.
        here = np.isin(site_of, np.unique(site_of[where]))
        inside = np.zeros(len(runs), dtype=bool)
        inside[lo:hi + 1] = True
        n_span = int((inside & here).sum())
        n_failed = int((failed & inside & here).sum())
        if n_failed < FAILURE_MIN_RUNS or n_failed < FAILURE_MIN_SHARE * n_span:
            continue
        ok_before = np.flatnonzero(~failed[:lo] & here[:lo])
        ok_after = np.flatnonzero(~failed[hi + 1:] & here[hi + 1:])
        bad = runs[failed & inside]
        statuses: tuple[int, ...] = ()
        if failed_requests is not None and not failed_requests.empty:
            mine = failed_requests[failed_requests["trace_id"].isin(bad["trace_id"])]
            counts = mine["http_status"].dropna().astype(int).value_counts()
            statuses = tuple(int(s) for s in counts.index)
        errors = bad["error_type"].dropna().astype(str).value_counts()
        found.append(FailureEpisode(
            first_failure=starts.iloc[lo].to_pydatetime(),
            last_failure=starts.iloc[hi].to_pydatetime(),
            last_ok_before=starts.iloc[int(ok_before[-1])].to_pydatetime() if len(ok_before) else None,
            first_ok_after=starts.iloc[hi + 1 + int(ok_after[0])].to_pydatetime() if len(ok_after) else None,
            failed=n_failed, runs=n_span, sites=tuple(sorted(bad["site"].astype(str).unique())),
            workflows=tuple(sorted(bad["workflow"].astype(str).unique())), statuses=statuses,
            error_types=tuple(str(e) for e in errors.index),
            trace_ids=tuple(bad["trace_id"].astype(str))))
    return found
