"""What is sent: Alertmanager API v2 alerts, Alertmanager webhook (version 4) notifications.

Both are built from saved alert records (labels, annotations, times); :func:`post` sends one body
and says whether it was taken. Nothing here decides *when* to send: that is ``engine``'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import smtplib
from email.message import EmailMessage

import httpx

__all__ = ["GROUP_BY", "ZERO_TIME", "alertmanager_alert", "email_message", "group_key", "post", "send_apprise", "send_email", "webhook_body"]

GROUP_BY = ("alertname", "site", "workflow")
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert in webhooks


def _rfc3339(moment: str | dt.datetime) -> str:
    value = dt.datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def group_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: labels[k] for k in GROUP_BY if labels.get(k)}


def group_key(labels: Mapping[str, str]) -> str:
    """Alertmanager's form: ``{}:{alertname="X", site="Y"}``."""
    inner = ", ".join(f'{k}="{v}"' for k, v in group_labels(labels).items())
    return "{}:{" + inner + "}"


def alertmanager_alert(record: Mapping[str, Any], ends_at: dt.datetime) -> dict[str, Any]:
    """One alert of a POST to ``/api/v2/alerts`` (postableAlert)."""
    return {
        "labels": dict(record["labels"]),
        "annotations": dict(record["annotations"]),
        "startsAt": _rfc3339(record["firing_since"]),
        "endsAt": _rfc3339(ends_at),
        "generatorURL": record["annotations"].get("dashboard", ""),
    }


def webhook_body(receiver: str, records: Sequence[Mapping[str, Any]], external_url: str) -> dict[str, Any]:
    """One notification of a group, in Alertmanager's webhook format (version 4)."""
    alerts = []
    for record in records:
        resolved = record["status"] == "resolved"
        alerts.append({
            "status": "resolved" if resolved else "firing",
            "labels": dict(record["labels"]),
            "annotations": dict(record["annotations"]),
            "startsAt": _rfc3339(record["firing_since"]),
            "endsAt": _rfc3339(record["resolved_at"]) if resolved else ZERO_TIME,
            "generatorURL": record["annotations"].get("dashboard", ""),
            "fingerprint": record["fingerprint"],
        })
    first = records[0]["labels"]

    def common(key: str) -> dict[str, str]:
        shared = dict(records[0][key])
        for record in records[1:]:
            shared = {k: v for k, v in shared.items() if record[key].get(k) == v}
        return shared

    return {
        "version": "4",
        "groupKey": group_key(first),
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": group_labels(first),
        "commonLabels": common("labels"),
        "commonAnnotations": common("annotations"),
        "externalURL": external_url,
        "alerts": alerts,
    }


def post(url: str, body: Any, timeout_s: float) -> str | None:
    """POST ``body`` as JSON; None when taken (2xx), else why not (never the response's body)."""
    try:
        response = httpx.post(url, json=body, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


def email_message(body: Mapping[str, Any], sender: str, to: Sequence[str]) -> EmailMessage:
    """A group's notification (the webhook body) as an e-mail: the owner's figures, the clinician's words."""
    firing = [a for a in body["alerts"] if a["status"] == "firing"]
    resolved = [a for a in body["alerts"] if a["status"] == "resolved"]
    head = f"[{body['status'].upper()}:{len(firing) or len(resolved)}] " + body["alerts"][0]["annotations"]["summary"]
    lines = []
    for title, alerts in (("Firing", firing), ("Resolved", resolved)):
        if alerts:
            lines.append(f"{title}:")
        for alert in alerts:
            notes = alert["annotations"]
            lines += ["", f"- {notes['summary']}", f"  {notes['description']}",
                      f"  For clinicians: {notes['clinician']}", f"  {notes['dashboard']}"]
        if alerts:
            lines.append("")
    message = EmailMessage()
    message["Subject"] = head
    message["From"] = sender
    message["To"] = ", ".join(to)
    message.set_content("\n".join(lines))
    return message


def send_email(message: EmailMessage, host: str, port: int, *, starttls: bool, username: str | None,
               password: str | None, timeout_s: float) -> str | None:
    """Send through SMTP; None when the server took it, else why not (never the credentials)."""
    try:
        with smtplib.SMTP(host, port, timeout=timeout_s) as smtp:
            if starttls:
                smtp.starttls()
            if username and password:
                smtp.login(username, password)
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        return f"SMTP {exc.smtp_code}"
    except (smtplib.SMTPException, OSError) as exc:
        return type(exc).__name__
    return None


def send_apprise(message: EmailMessage, urls: Sequence[str]) -> str | None:
    """Send a group's notification (as :func:`email_message` words it) to apprise URLs; None when
    every service took it, else why not (never a URL: they hold tokens)."""
    import warnings

    # apprise 2.2 imports the standard library's deprecated imghdr as it loads its services
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise  # loaded only where a receiver uses it

        sender = apprise.Apprise()
        for url in urls:
            if not sender.add(url):
                return "an apprise URL it does not understand"
        if not sender.notify(title=str(message["Subject"]), body=message.get_content()):
            return "apprise could not deliver"
    return None
