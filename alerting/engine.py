"""One evaluation: conditions -> alert states -> notifications due -> the outbox; and delivery.

Evaluation and delivery are separate on purpose: :meth:`Evaluator.evaluate` only reads the
store and writes the state (notifications go into the durable outbox), and
:meth:`Evaluator.deliver` sends what is due, one receiver at a time in order, backing off a
receiver that fails. So a receiver that is down delays its own notifications, never an
evaluation, and loses none of them. A notification counts as sent for the repeat interval when it
enters the outbox; both are saved in one atomic write.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from analysis.changelog import ChangeLogError, effective_changes
from analysis.notices import add_notice, read_delivery, write_delivery
from analysis.store import open_store
from alerting.config import AlertingConfig, AlertmanagerReceiver, AppriseReceiver, EmailReceiver, WebhookReceiver
from alerting.delivery import (
    alertmanager_alert,
    email_message,
    group_key,
    post,
    send_apprise,
    send_email,
    webhook_body,
)
from alerting.planned import PlannedWindow, covering, planned_windows
from alerting.messages import Names, clinician_text, dashboard_link, owner_text, summary
from alerting.rules import AlertInputs, Condition, conditions, fingerprint
from alerting.silences import is_silenced, load_silences
from alerting.state import empty_state, load_state, save_state
from alerting.waits import UnwatchedWaits
from store.errors import StoreError

__all__ = ["Evaluator", "run_forever"]

log = logging.getLogger(__name__)

KEEP_RESOLVED = dt.timedelta(days=7)
BACKOFF_S = (10.0, 300.0)  # first retry after 10 s, doubling up to 5 minutes
ENDS_AFTER_INTERVALS = 4  # Alertmanager's endsAt of a firing alert: this many evaluations ahead


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


class Evaluator:
    """Evaluates the alerts over one store and delivers them; its state lives in ``data_dir``."""

    def __init__(self, data_dir: Path, config: AlertingConfig, inputs: AlertInputs, names: Names,
                 *, clock: Callable[[], dt.datetime] = _utc_now, passwords: Mapping[str, str] | None = None,
                 apprise_urls: Mapping[str, list[str]] | None = None, waits: UnwatchedWaits | None = None,
                 keep_state: bool = True, notice_source: str = "alert") -> None:
        self.data_dir = Path(data_dir)
        self.config = config
        self.inputs = inputs
        self.names = names
        self.clock = clock
        self.passwords = dict(passwords or {})  # receiver name -> resolved secret, never saved
        self.apprise_urls = dict(apprise_urls or {})  # receiver name -> resolved URLs, never saved
        self.waits = waits  # the findings' unwatched waits (found every quarter hour), or none
        # keep_state=False: the state lives in this object only (a replay of a simulated history
        # must leave the live evaluator's alerts and outbox as they were)
        self.keep_state = keep_state
        self.notice_source = notice_source  # "alert", or "history" for a replay's notices
        self._lock = threading.Lock()
        self.state = load_state(self.data_dir) if keep_state else empty_state()

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(self, at: dt.datetime | None = None, *, store: Any = None) -> list[dict[str, Any]]:
        """Judge every alert at ``at`` (default now), plan notifications; the alerts not resolved.

        ``store``: one already open (a replay's :class:`alerting.replay.RunsWindow`); else the
        data directory's store is opened for this evaluation."""
        at = at or self.clock()
        if store is not None:
            found = self._conditions(store, at)
        else:
            try:
                with open_store(self.data_dir, calendar=self.inputs.calendar) as opened:
                    found = self._conditions(opened, at)
            except StoreError as exc:
                if (self.data_dir / "store.json").exists():
                    raise
                log.info("no store yet at %s (%s): nothing to judge", self.data_dir, exc)
                found = []
        silences = load_silences(self.data_dir)
        windows = self._planned_windows()
        with self._lock:
            self._transition(found, at)
            for record in self.state["alerts"].values():
                window = covering(record["labels"], windows, at)
                record["silenced"] = window is not None or is_silenced(record["labels"], silences, at)
                record["planned"] = window.reason if window is not None else None
            for receiver in self.config.receivers:
                if isinstance(receiver, WebhookReceiver | EmailReceiver | AppriseReceiver):
                    self._plan_webhook(receiver, at)
                else:
                    self._plan_alertmanager(receiver, at)
                    self._plan_planned_silences(receiver, windows, at)
            self._prune(at)
            if self.keep_state:
                save_state(self.data_dir, self.state)
                self._publish_delivery()
            return [dict(r) for r in self.state["alerts"].values() if r["status"] != "resolved"]

    def _conditions(self, store: Any, at: dt.datetime) -> list[Condition]:
        found = conditions(store, self.inputs, at)
        if self.waits is not None:
            try:
                found += self.waits.conditions(store, at)
            except Exception:  # the findings must never stop the other alerts: logged
                log.exception("finding the unwatched waits failed; the other alerts are judged")
        return found

    def _planned_windows(self) -> list[PlannedWindow]:
        """The SLAs' agreed maintenance and the changes' planned windows, read afresh (a change
        recorded while this runs counts at once); one that cannot be read is logged and skipped."""
        try:
            changes = effective_changes(self.inputs.changes, self.data_dir)
        except ChangeLogError as exc:
            log.warning("planned changes not read: %s", exc)
            changes = list(self.inputs.changes)
        try:
            return planned_windows(self.inputs.slas, changes, self.inputs.base_dir)
        except (OSError, ValueError) as exc:
            log.warning("planned windows not read: %s", exc)
            return planned_windows((), changes)

    def _plan_planned_silences(self, receiver: AlertmanagerReceiver, windows: list[PlannedWindow],
                               at: dt.datetime) -> None:
        """Each planned window not yet over, made once as a silence in the Alertmanager too."""
        made: dict[str, str] = self.state["planned"].setdefault(receiver.name, {})
        for window in windows:
            if window.end > at and window.key not in made:
                self._enqueue(receiver.name, "silence", window.alertmanager_body(), at)
                made[window.key] = _iso(window.end)
        for key in [k for k, end in made.items() if _at(end) <= at - KEEP_RESOLVED]:
            del made[key]

    def _transition(self, found: list[Condition], at: dt.datetime) -> None:
        alerts: dict[str, dict[str, Any]] = self.state["alerts"]
        active = {c.fingerprint: c for c in found}
        for fp, condition in active.items():
            record = alerts.get(fp)
            if record is None or record["status"] == "resolved":
                record = alerts[fp] = {"fingerprint": fp, "labels": condition.labels, "status": "pending",
                                       "since": _iso(at), "firing_since": None, "resolved_at": None,
                                       "notified": {}, "resolved_notified": {}}
            record["facts"] = condition.facts
            held = at - _at(record["since"])
            if record["status"] == "pending" and held.total_seconds() >= self.config.for_s:
                record["status"], record["firing_since"] = "firing", _iso(at)
                record["annotations"] = self._annotations(record, at, resolved=False)
                self._notice(record, at)
            record["annotations"] = self._annotations(record, at, resolved=False)
        for fp in list(alerts):
            record = alerts[fp]
            if fp in active:
                continue
            if record["status"] == "pending":
                del alerts[fp]
            elif record["status"] == "firing":
                record["status"], record["resolved_at"] = "resolved", _iso(at)
                record["annotations"] = self._annotations(record, at, resolved=True)
                self._notice(record, at)

    def _notice(self, record: Mapping[str, Any], at: dt.datetime) -> None:
        """The status page's notice of a page-severity alert firing or resolving, per site."""
        if record["labels"].get("severity") != "page":
            return  # tickets are for the service desk, not the ward
        sites = record["labels"].get("site", "all").split(",")
        for site in sites:
            key = f"{record['fingerprint']}:{record['status']}:{record['firing_since']}"
            if len(sites) > 1:  # a notice per site: the key is what keeps one from being written twice
                key += f":{site}"
            add_notice(self.data_dir, site, record["annotations"]["clinician"], at, source=self.notice_source,
                       key=key if self.notice_source == "alert" else f"{self.notice_source}:{key}")

    def _annotations(self, record: Mapping[str, Any], at: dt.datetime, *, resolved: bool) -> dict[str, str]:
        labels, facts, since = record["labels"], record["facts"], record["since"]
        return {
            "summary": summary(labels, facts, self.names),
            "description": owner_text(labels, facts, since, at, self.names),
            "clinician": clinician_text(labels, facts, since, at, self.names, resolved=resolved),
            "dashboard": dashboard_link(labels, self.names, facts),
        }

    def receivers_for(self, labels: Mapping[str, str]) -> set[str]:
        """The receivers an alert goes to: every one without routes, else those of matching routes."""
        if not self.config.routes:
            return {r.name for r in self.config.receivers}
        chosen: set[str] = set()
        for route in self.config.routes:
            if all(labels.get(k) == v for k, v in route.matchers.items()):
                chosen.update(route.receivers)
        return chosen

    def _enqueue(self, receiver: str, kind: str, body: Any, at: dt.datetime) -> None:
        self.state["outbox"].append({"id": self.state["next_id"], "receiver": receiver, "kind": kind,
                                     "body": body, "attempts": 0, "created": _iso(at),
                                     "next_attempt": _iso(at)})
        self.state["next_id"] += 1

    def _plan_webhook(self, receiver: WebhookReceiver | EmailReceiver | AppriseReceiver, at: dt.datetime) -> None:
        """Alertmanager's grouping, kept small: one notification per group when it first fires,
        when its alerts change (at most once per group interval), each repeat interval, and once
        when what was notified has resolved."""
        groups: dict[str, dict[str, Any]] = self.state["groups"].setdefault(receiver.name, {})
        members: dict[str, list[dict[str, Any]]] = {}
        for record in self.state["alerts"].values():
            # Silenced alerts are not notified here; Alertmanager applies its own copy of the silence.
            if (record["status"] != "pending" and not record.get("silenced")
                    and receiver.name in self.receivers_for(record["labels"])):
                members.setdefault(group_key(record["labels"]), []).append(record)
        for key in sorted(set(members) | set(groups)):
            records = members.get(key, [])
            firing = [r for r in records if r["status"] == "firing"]
            group = groups.get(key)
            notified = set(group["firing"]) if group else set()
            resolved = [r for r in records if r["status"] == "resolved" and r["fingerprint"] in notified]
            waited = (at - _at(group["last_sent"])).total_seconds() if group else None
            if firing:
                changed = {r["fingerprint"] for r in firing} != notified
                due = (waited is None or (changed and waited >= self.config.group_interval_s)
                       or waited >= self.config.repeat_interval_s)
            else:
                due = bool(resolved) and (waited is None or waited >= self.config.group_interval_s)
                if not resolved and group is not None:
                    del groups[key]  # what it notified is gone (pruned): nothing left to say
                    continue
            if not due:
                continue
            sent = firing + resolved
            self._enqueue(receiver.name, "webhook", webhook_body(receiver.name, sent, self.names.dashboard_url), at)
            for record in firing:
                record["notified"][receiver.name] = _iso(at)
            for record in resolved:
                record["resolved_notified"][receiver.name] = _iso(at)
            if firing:
                groups[key] = {"last_sent": _iso(at), "firing": sorted(r["fingerprint"] for r in firing)}
            else:
                del groups[key]

    def _plan_alertmanager(self, receiver: AlertmanagerReceiver, at: dt.datetime) -> None:
        """Every firing alert at every evaluation (ending a few intervals ahead, so Alertmanager
        resolves it by itself should Wardwatch stop), and each resolved one once with endsAt = its end."""
        ends_at = at + dt.timedelta(seconds=self.config.interval_s * ENDS_AFTER_INTERVALS)
        body = []
        for record in self.state["alerts"].values():
            if receiver.name not in self.receivers_for(record["labels"]):
                continue
            if record["status"] == "firing":
                body.append(alertmanager_alert(record, ends_at))
                record["notified"][receiver.name] = _iso(at)
            elif (record["status"] == "resolved" and receiver.name in record["notified"]
                  and receiver.name not in record["resolved_notified"]):
                body.append(alertmanager_alert(record, _at(record["resolved_at"])))
                record["resolved_notified"][receiver.name] = _iso(at)
        # An undelivered earlier post is replaced by this one; the resolutions it carried are kept.
        sending = {fingerprint(a["labels"]) for a in body}
        for item in [i for i in self.state["outbox"] if i["receiver"] == receiver.name and i["kind"] == "alertmanager"]:
            body += [a for a in item["body"] if fingerprint(a["labels"]) not in sending
                     and _at(a["endsAt"].replace("Z", "+00:00")) <= at]
            self.state["outbox"].remove(item)
        if body:
            self._enqueue(receiver.name, "alertmanager", body, at)

    def _prune(self, at: dt.datetime) -> None:
        referenced = {fp for groups in self.state["groups"].values() for g in groups.values() for fp in g["firing"]}
        for fp in [fp for fp, r in self.state["alerts"].items()
                   if r["status"] == "resolved" and fp not in referenced
                   and at - _at(r["resolved_at"]) > KEEP_RESOLVED]:
            del self.state["alerts"][fp]

    # -- delivery --------------------------------------------------------------------------------

    def deliver(self, now: dt.datetime | None = None) -> list[str]:
        """Send what is due, oldest first per receiver; a receiver's first failure defers the rest
        of its notifications (they keep their order). Returns a line per failure."""
        now = now or self.clock()
        receivers = {r.name: r for r in self.config.receivers}
        with self._lock:
            due = [dict(i) for i in self.state["outbox"] if _at(i["next_attempt"]) <= now]
        failed: list[str] = []
        blocked: set[str] = set()
        for item in due:
            receiver = receivers.get(item["receiver"])
            if item["receiver"] in blocked:
                continue
            if receiver is None:  # a receiver since removed from the configuration
                self._settle(item, now, None)
                continue
            if isinstance(receiver, AppriseReceiver):
                error = send_apprise(email_message(item["body"], "wardwatch", ["apprise"]),
                                     self.apprise_urls.get(receiver.name, []))
            elif isinstance(receiver, EmailReceiver):
                error = send_email(email_message(item["body"], receiver.sender, receiver.to), receiver.host,
                                   receiver.port, starttls=receiver.starttls, username=receiver.username,
                                   password=self.passwords.get(receiver.name), timeout_s=receiver.timeout_s)
            else:
                path = {"alertmanager": "/api/v2/alerts", "silence": "/api/v2/silences"}.get(item["kind"])
                url = receiver.url.rstrip("/") + path if path else receiver.url
                error = post(url, item["body"], receiver.timeout_s)
            self._settle(item, now, error)
            if error is not None:
                blocked.add(item["receiver"])
                failed.append(f"receiver {receiver.name}: {error}; retrying")
                log.warning("alert receiver %s: %s (attempt %d); will retry", receiver.name, error,
                            item["attempts"] + 1)
        return failed

    def _settle(self, item: Mapping[str, Any], now: dt.datetime, error: str | None) -> None:
        with self._lock:
            saved = next((i for i in self.state["outbox"] if i["id"] == item["id"]), None)
            status = self.state["delivery"].setdefault(item["receiver"], {})
            if error is None:
                if saved is not None:
                    self.state["outbox"].remove(saved)
                status["last_ok"] = _iso(now)
            else:
                status["last_error"], status["last_error_at"] = error, _iso(now)
                if saved is not None:
                    saved["attempts"] += 1
                    wait = min(BACKOFF_S[0] * 2 ** (saved["attempts"] - 1), BACKOFF_S[1])
                    saved["next_attempt"] = _iso(now + dt.timedelta(seconds=wait))
            save_state(self.data_dir, self.state)
            self._publish_delivery()

    def _publish_delivery(self) -> None:
        """For the dashboard: each receiver with notifications waiting, since when, its last error."""
        waiting: dict[str, dict[str, Any]] = {}
        for item in self.state["outbox"]:
            if item["attempts"] == 0:
                continue  # not tried yet: not a problem
            row = waiting.setdefault(item["receiver"], {"receiver": item["receiver"], "waiting": 0,
                                                        "since": item["created"], "error": None})
            row["waiting"] += 1
            row["since"] = min(row["since"], item["created"])
            row["error"] = self.state["delivery"].get(item["receiver"], {}).get("last_error")
        rows = sorted(waiting.values(), key=lambda r: r["receiver"])
        if rows or read_delivery(self.data_dir):
            write_delivery(self.data_dir, rows)

    def pending_deliveries(self) -> int:
        with self._lock:
            return len(self.state["outbox"])


def run_forever(evaluator: Evaluator, stop: threading.Event) -> None:
    """Evaluate every ``interval_s``; deliver on a thread of its own, so a slow receiver never
    delays an evaluation."""
    wake = threading.Event()

    def deliver() -> None:
        while not stop.is_set():
            try:
                evaluator.deliver()
            except Exception:  # a delivery bug must not stop evaluation; it is logged
                log.exception("alert delivery failed")
            wake.wait(5.0)
            wake.clear()

    worker = threading.Thread(target=deliver, name="alert-delivery", daemon=True)
    worker.start()
    while not stop.is_set():
        try:
            evaluator.evaluate()
        except Exception:  # a store being compacted, a rule's bug: logged, tried again next time
            log.exception("alert evaluation failed")
        wake.set()
        stop.wait(evaluator.config.interval_s)
    worker.join(timeout=10)
