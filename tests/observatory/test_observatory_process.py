"""`wardwatch observatory` as a real process: a 200 means on disk, even across kill -9, and a batch
sent again after a restart is stored once."""

from __future__ import annotations

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from .processes import TOKEN_ENV, ObservatoryProcess, free_port, observatory_config, stored_ids
from .test_receiver import recorded_spans


def test_acknowledged_spans_survive_kill_9_and_a_retry_is_stored_once(tmp_path):
    store = tmp_path / "central"
    observatory = ObservatoryProcess(observatory_config(tmp_path, store), free_port(), tmp_path / "obs.log").start()
    headers = {"Authorization": f"Bearer {TOKEN_ENV['WARDWATCH_SITE_TOKEN_WARD_7']}",
               "Content-Type": "application/x-protobuf"}
    try:
        batches = [encode_spans(recorded_spans("ward-7", n=50)).SerializeToString() for _ in range(4)]
        for batch in batches:
            assert httpx.post(f"{observatory.url}/v1/traces", content=batch, headers=headers).status_code == 200
        observatory.kill()  # kill -9 straight after the last 200
        assert len(stored_ids(store)) == 200  # every acknowledged span is on disk
        observatory.start()
        for batch in batches:  # the sender never got its answers: it sends everything again
            assert httpx.post(f"{observatory.url}/v1/traces", content=batch, headers=headers).status_code == 200
        ids = stored_ids(store)
        assert len(ids) == len(set(ids)) == 200
    finally:
        observatory.kill()


def test_without_a_token_the_observatory_refuses_to_start(tmp_path):
    import subprocess
    import sys

    from .processes import ENV

    config = observatory_config(tmp_path, tmp_path / "central")
    env = {k: v for k, v in ENV.items() if k != "WARDWATCH_SITE_TOKEN_WARD_7"}
    done = subprocess.run([sys.executable, "-m", "wardwatch", "observatory", "-c", str(config), "--port", "0",
                           "--no-dashboard"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "observatory.tokens.ward-7: environment variable WARDWATCH_SITE_TOKEN_WARD_7 is not set" in done.stderr


def test_the_testbed_sends_its_server_spans_to_the_observatory_when_told_to(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from store import list_segments, schema

    from .processes import ENV, free_port

    store = tmp_path / "central"
    extra = "  sources:\n    - {service_name: wardwatch-testbed, target: null, token: \"${env:WARDWATCH_EPR_TOKEN_TESTBED}\"}\n"
    observatory = ObservatoryProcess(observatory_config(tmp_path, store, extra), free_port(), tmp_path / "obs.log").start()
    port = free_port()
    epr = subprocess.Popen([sys.executable, "-m", "wardwatch", "testbed", "--port", str(port), "--observatory", observatory.url],
                           env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list_segments(store):
            time.sleep(0.5)
    finally:
        epr.send_signal(signal.SIGINT)
        epr.wait(30)
        observatory.kill()
    import pyarrow.parquet as pq

    services = {s for segment in list_segments(store) for s in pq.read_table(segment, columns=[schema.SERVICE_NAME])[schema.SERVICE_NAME].to_pylist()}
    assert services == {"wardwatch-testbed"}
