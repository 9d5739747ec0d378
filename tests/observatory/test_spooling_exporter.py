"""The spool exporter against an in-process observatory: spans reach the store through the SDK's
client; a refused token keeps every row; the sender picks up what an earlier exporter left."""

from __future__ import annotations

import time
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from collector.spool import SiteSpool, SpoolingExporter, spool_file
from store import schema

from .conftest import TOKENS


def record(exporter: SpoolingExporter, site: str, n: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "wardwatch-probe", schema.ATTR_SITE: site}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("probe")
    for i in range(n):
        with tracer.start_as_current_span(f"run {i}", attributes={schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_RUN}):
            pass


def wait_for(condition, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_spans_are_sent_from_the_spool_and_deleted_once_acknowledged(observatory, tmp_path: Path) -> None:
    exporter = SpoolingExporter(tmp_path / "spool", observatory.url, TOKENS, timeout_s=5)
    record(exporter, "ward-7", 4)
    assert wait_for(lambda: len(observatory.stored()) == 4)
    exporter.shutdown()
    spool = SiteSpool(spool_file(tmp_path / "spool", "ward-7"))
    assert spool.backlog().batches == 0
    assert spool.counters() == {"spooled_spans": 4, "sent_spans": 4}


def test_a_refused_token_keeps_the_spans_for_the_next_probe(observatory, tmp_path: Path) -> None:
    wrong = SpoolingExporter(tmp_path / "spool", observatory.url, {"ward-7": "not-the-token"}, timeout_s=5, drain_s=5)
    record(wrong, "ward-7", 3)
    wrong.shutdown()
    assert observatory.stored() == []
    assert SiteSpool(spool_file(tmp_path / "spool", "ward-7")).backlog().runs == 3
    # the next probe process, with the right token, sends what was left first
    right = SpoolingExporter(tmp_path / "spool", observatory.url, TOKENS, drain_sites=["ward-7"], timeout_s=5)
    assert wait_for(lambda: len(observatory.stored()) == 3)
    right.shutdown()


def test_each_batch_tells_the_observatory_the_sites_health(observatory, tmp_path: Path) -> None:
    import json

    exporter = SpoolingExporter(tmp_path / "spool", observatory.url, TOKENS, timeout_s=5)
    record(exporter, "ward-7", 2)
    assert wait_for(lambda: len(observatory.stored()) == 2)
    exporter.shutdown()
    observatory.app.state.health.save()
    saved = json.loads((observatory.store / schema.SITE_HEALTH_FILE).read_text())
    (ward_7,) = [s for s in saved["senders"] if s["sender"] == "ward-7"]
    assert ward_7["spans"] == 2 and ward_7["spool_batches"] >= 1  # the batch being sent counts
    assert abs(ward_7["clock_offset_s"]) < 5  # one clock on this machine
    assert ward_7["probe_version"]
    assert abs(ward_7["last_heard"] - time.time()) < 60


def test_probes_of_two_sites_keep_separate_heartbeats(tmp_path: Path) -> None:
    from wardwatch import forwarding
    from wardwatch.config import parse_config

    config = forwarding.with_observatory(parse_config(f"store: {{path: {tmp_path}}}"), "http://127.0.0.1:1")
    assert forwarding.probe_state_dir(config, "ward-7") != forwarding.probe_state_dir(config, "community-hospital")


def test_a_backlog_leaves_in_few_requests_and_a_refused_batch_is_set_aside(observatory, tmp_path: Path) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from .test_receiver import recorded_spans

    spool = SiteSpool(spool_file(tmp_path / "spool", "ward-7"))
    for i in range(10):  # as a probe leaves them while the observatory is down
        if i == 6:
            spool.put(b"\x0a\xff\xff\xff\xff\x0f", spans=1, runs=0, missed_only=False)  # a body no observatory takes
        spool.put(encode_spans(recorded_spans("ward-7", n=3)).SerializeToString(), spans=3, runs=1, missed_only=False)
    spool.close()
    exporter = SpoolingExporter(tmp_path / "spool", observatory.url, TOKENS, drain_sites=["ward-7"], timeout_s=5)
    assert wait_for(lambda: len(observatory.stored()) == 30)
    exporter.shutdown()
    backlog = SiteSpool(spool_file(tmp_path / "spool", "ward-7")).backlog()
    assert (backlog.batches, backlog.rejected_batches) == (0, 1)
    requests = observatory.app.state.health.senders["ward-7"].requests
    assert requests < 10  # the good batches went together, around the refused one


def test_a_forwarding_probe_takes_its_missed_slots_from_its_own_state_not_the_store(tmp_path: Path) -> None:
    """The store at store.path may be the observatory's, behind this probe's spool: slots waiting in
    the spool would be counted as missed while the probe was down."""
    from wardwatch import forwarding, wiring
    from wardwatch.config import parse_config

    config = parse_config(f"store: {{path: {tmp_path}}}")
    assert wiring.build_probe(config, exporters=[])._recorded_slots is not None
    sending = forwarding.with_observatory(config, "http://127.0.0.1:1")
    probe = wiring.build_probe(sending, exporters=[], site="ward-7")
    assert probe._recorded_slots is None
    assert probe._state.path.parent == forwarding.probe_state_dir(sending, "ward-7")
