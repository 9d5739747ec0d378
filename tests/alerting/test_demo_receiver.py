"""The demo's own receiver: Wardwatch's webhooks delivered to it on loopback, listed on its page in
plain words, newest first."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from alerting.config import AlertingConfig, AlertmanagerReceiver, WebhookReceiver
from alerting.engine import Evaluator
from alerting.messages import Names
from alerting.rules import AlertInputs
from tests.alerting.servers import free_port
from wardwatch.demo_receiver import DemoReceiver, loopback_webhooks

UTC = dt.UTC
T0 = dt.datetime(2026, 10, 1, 9, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testbed.yaml"
DEMO_RECEIVER_PORT = 8051


def test_delivered_alerts_are_listed_newest_first_in_plain_words(add_runs) -> None:
    data = add_runs([(T0 + i * MINUTE, "open", "ward-7", "failed", 1.0) for i in range(3)])
    port = free_port()
    with DemoReceiver("demo-receiver", port=port, hook_path="/hook") as receiver:
        assert receiver.url == f"http://127.0.0.1:{port}/"
        empty = httpx.get(receiver.url, timeout=5).text
        assert "Nothing received yet" in empty
        config = AlertingConfig(receivers=[WebhookReceiver(name="demo-receiver", type="webhook",
                                                           url=f"http://127.0.0.1:{port}/hook")])
        ev = Evaluator(data, config, AlertInputs(), Names(workflows={"open": "Open patient record"},
                                                          sites={"ward-7": "Ward 7"}))
        ev.evaluate(T0 + 3 * MINUTE)
        assert ev.deliver(T0 + 3 * MINUTE) == []
        add_runs([(T0 + 3 * MINUTE, "open", "ward-7", "ok", 1.0)])
        ev.evaluate(T0 + 10 * MINUTE)
        assert ev.deliver(T0 + 10 * MINUTE) == []
        page = httpx.get(receiver.url, timeout=5).text
    assert len(receiver.received) == 2
    over = page.index("Over: Every run of Open patient record at Ward 7 is failing")
    firing = page.index("Firing: Every run of Open patient record at Ward 7 is failing")
    assert over < firing  # newest first
    assert "For clinicians: Open patient record is not working at Ward 7 since 10:00." in page
    assert "For clinicians: Open patient record at Ward 7 is working normally again" in page
    assert "For the service owner: Open patient record at Ward 7: the latest 3 runs all failed" in page
    assert "1 over" in page and "1 firing" in page


def test_it_refuses_what_is_not_a_webhook_notification() -> None:
    with DemoReceiver("r") as receiver:
        hook = receiver.url + "hook"
        assert httpx.post(hook, content=b"{not json", timeout=5).status_code == 400
        assert httpx.post(hook, json={"version": "3", "alerts": []}, timeout=5).status_code == 400
        assert httpx.post(receiver.url + "elsewhere", json={}, timeout=5).status_code == 404
        assert httpx.post(hook, content=b"x" * (2 << 20), timeout=5).status_code == 413
        assert "<script" not in receiver.page()
        receiver.take({"version": "4", "status": "firing",
                       "alerts": [{"status": "firing", "annotations": {"summary": "<script>alert(1)</script>"}}]})
        assert "<script>alert" not in receiver.page() and "&lt;script&gt;" in receiver.page()


def test_the_demo_starts_receivers_for_the_webhooks_on_this_machine_only() -> None:
    receivers = [WebhookReceiver(name="demo", type="webhook", url="http://127.0.0.1:8051/hook"),
                 WebhookReceiver(name="oncall", type="webhook", url="https://oncall.trust.example/hook"),
                 AlertmanagerReceiver(name="am", type="alertmanager", url="http://127.0.0.1:9093")]
    assert loopback_webhooks(receivers) == [("demo", "127.0.0.1", 8051, "/hook")]


def test_the_tests_configs_made_from_the_demos_post_alerts_to_their_own_receiver(tmp_path) -> None:
    """The example's alerts go to the demo's receiver at 127.0.0.1:8051: a configuration the tests
    make from it (the observatory's and the demo's process tests run alerts beside them) posts to a
    free port of its own, so a demo running at the same time receives none of the tests' alerts."""
    from tests.observatory.processes import ENV, site_config
    from wardwatch.config import load_config

    assert [r.url for r in load_config(EXAMPLE, environ=ENV).alerting.receivers] == ["http://127.0.0.1:8051/hook"]
    config = load_config(site_config(tmp_path, tmp_path / "data", "http://127.0.0.1:1/fhir", "http://127.0.0.1:1/token"),
                         environ=ENV)
    [receiver] = config.alerting.receivers
    address = urlsplit(receiver.url)
    assert address.hostname == "127.0.0.1" and address.port not in (DEMO_RECEIVER_PORT, None)
