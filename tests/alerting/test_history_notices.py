"""The demo's start writes the notices its simulated history would have shown on the status page:
the same evaluator stepped through the history's last weekday, delivering nothing, once."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import yaml

from analysis.notices import read_notices
from tests.alerting.servers import recorder
from tests.alerting.test_messages import JARGON
from wardwatch import simulate, wiring
from wardwatch.alerts import last_weekday
from wardwatch.config import load_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "testbed.yaml"
UTC = dt.UTC
END = dt.datetime(2026, 12, 5, 10, tzinfo=UTC)  # a Saturday morning: no page would fire now
ENV = {"WARDWATCH_TESTBED_CLIENT_SECRET": "x", "WARDWATCH_SITE_TOKEN_WARD_7": "a",
       "WARDWATCH_SITE_TOKEN_OUTPATIENT_CLINIC": "b", "WARDWATCH_SITE_TOKEN_COMMUNITY_HOSPITAL": "c",
       "WARDWATCH_EPR_TOKEN_TESTBED": "d"}


def test_the_last_weekday_is_a_whole_local_day_before_the_end() -> None:
    start = END - dt.timedelta(days=8)
    assert last_weekday(start, END, "Europe/London") == (dt.datetime(2026, 12, 4, tzinfo=UTC),
                                                         dt.datetime(2026, 12, 5, tzinfo=UTC))
    monday = dt.datetime(2026, 12, 7, 2, tzinfo=UTC)
    assert last_weekday(monday - dt.timedelta(days=8), monday, "Europe/London")[0] == dt.datetime(2026, 12, 4, tzinfo=UTC)
    assert last_weekday(monday - dt.timedelta(days=2), monday, "Europe/London") == (None, None)


def test_the_demo_start_writes_the_history_notices_once_and_delivers_none(tmp_path: Path) -> None:
    with recorder() as hook:
        document = yaml.safe_load(EXAMPLE.read_text())
        document["store"]["path"] = str(tmp_path / "data")
        document["alerting"]["receivers"] = [{"name": "demo-receiver", "type": "webhook", "url": hook.url}]
        path = tmp_path / "wardwatch.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        config = load_config(path, environ=ENV)
        data = config.store.path
        summary = simulate.simulate_history(config, days=8, end=END, workers=1)
        wiring._history_notices(config, summary, tmp_path)
        notices = read_notices(data, limit=100)
        # Friday 4 December: the afternoon clinics' stalls, an unwatched wait the findings discover,
        # page from the first quarter hour judged in their hours to 17:00 (London is on UTC in winter)
        said = [(f"{dt.datetime.fromisoformat(n.at):%a %H:%M}", n.site, n.text) for n in reversed(notices)]
        assert [site for _, site, _ in said] == ["all", "all"], said
        fired, resolved = said[0][0], said[1][0]
        assert fired in ("Fri 13:30", "Fri 13:45") and resolved == "Fri 17:00", said
        update = (dt.datetime.strptime(fired[4:], "%H:%M") + dt.timedelta(minutes=30)).strftime("%H:%M")
        assert said[0][2].endswith(f"are slow at every site since {fired[4:]}, as often on weekdays between 13:30 "
                                   f"and 17:00. You can keep working; they do complete, but may take longer. "
                                   f"We will update you by {update}."), said[0][2]
        assert said[1][2].endswith("at every site are working normally again, since 17:00."), said[1][2]
        assert {n.source for n in notices} == {"history"}
        assert not any(JARGON.search(n.text) for n in notices)
        # the past is not news: nothing sent, nothing waiting, the live evaluator's state untouched
        assert hook.bodies == []
        assert not (data / "alerting" / "state.json").exists()
        # a second start over the same history writes nothing more; nor does one that lost its mark
        wiring._history_notices(config, summary, tmp_path)
        assert read_notices(data, limit=100) == notices
        (data / "alerting" / "history-notices.json").unlink()
        wiring._history_notices(config, summary, tmp_path)
        assert read_notices(data, limit=100) == notices
        assert json.loads((data / "alerting" / "history-notices.json").read_text())["end"] == END.isoformat()
        assert hook.bodies == []
