"""The observatory over TLS: a probe's spool sends with the SDK's client, verifying the observatory
against the CA file it is given; without it, nothing is sent and the spool keeps everything."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from collector.spool import SiteSpool, SpoolingExporter, spool_file
from observatory import Ingest, ObservatoryServer, ObservatoryServerError, RecentSpans, Tokens, create_app

from .conftest import TOKENS
from .test_spooling_exporter import record, wait_for

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_spans_reach_an_observatory_over_tls(tmp_path: Path, certificate: tuple[Path, Path], monkeypatch) -> None:
    import certifi

    from store import list_segments

    # as on many machines: requests let this variable override the configured CA file
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    cert, key = certificate
    ingest = Ingest(tmp_path / "central", RecentSpans(1000, 3600)).start()
    app = create_app(Tokens(TOKENS), ingest, max_body_bytes=1024 * 1024)
    with ObservatoryServer(app, port=0, tls=(cert, key)) as server:
        assert server.url.startswith("https://")
        unverified = SpoolingExporter(tmp_path / "spool-a", server.url, TOKENS, timeout_s=2, drain_s=3)
        record(unverified, "ward-7", 2)  # the system's CAs do not know this certificate
        unverified.shutdown()
        assert SiteSpool(spool_file(tmp_path / "spool-a", "ward-7")).backlog().spans == 2
        verified = SpoolingExporter(tmp_path / "spool-b", server.url, TOKENS, timeout_s=5, certificate=cert)
        record(verified, "ward-7", 3)
        assert wait_for(lambda: len(list_segments(tmp_path / "central")) > 0)
        verified.shutdown()
    ingest.stop()
    assert SiteSpool(spool_file(tmp_path / "spool-b", "ward-7")).backlog().spans == 0


def test_an_unreadable_key_is_a_clear_error(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    ingest = Ingest(tmp_path / "central", RecentSpans(10, 60))
    app = create_app(Tokens(TOKENS), ingest, max_body_bytes=1024)
    with pytest.raises(ObservatoryServerError, match="cannot serve TLS"):
        ObservatoryServer(app, port=0, tls=(certificate[0], tmp_path / "missing.key")).start()
