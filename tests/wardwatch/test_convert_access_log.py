"""examples/convert-access-log.py: an nginx or Apache access log, converted and imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from store import connect
from tests.campaign.support import write_config
from wardwatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "convert-access-log.py"

NGINX = [
    '10.1.2.3 - dr.jones [01/Oct/2026:08:00:00 +0100] "GET /fhir/Patient?identifier=MRN123456 HTTP/1.1" '
    '200 5120 "https://epr.example/ward" "Mozilla/5.0 (X11)" 0.120',
    '10.1.2.3 - - [01/Oct/2026:08:00:01 +0100] "GET /fhir/Patient/pat-0042 HTTP/2.0" 200 812 "-" "curl/8" 2.400',
    '10.1.2.4 - - [01/Oct/2026:08:00:02 +0100] "GET /fhir/Observation?patient=pat-0042&category=vital-signs HTTP/1.1" '
    '503 0 "-" "-" 0.080',
    "this is not an access log line",
    '10.1.2.4 - - [01/Oct/2026:08:00:03 +0100] "GET /fhir/metadata HTTP/1.1" 200 99 "-" "-"',  # no duration
]
APACHE = ['192.168.0.9 - - [01/Oct/2026:07:00:04 +0000] "POST /fhir/Observation HTTP/1.1" 201 300 '
          '"-" "probe" 45000']


def convert(tmp_path: Path, lines: list[str], *unit: str) -> subprocess.CompletedProcess[str]:
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return subprocess.run([sys.executable, str(SCRIPT), str(log), *unit], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def test_an_nginx_log_converted_and_imported(tmp_path: Path) -> None:
    done = convert(tmp_path, NGINX)
    assert done.returncode == 1  # two lines skipped
    log = tmp_path / "access.log"
    assert done.stderr.splitlines() == [
        f"{log}:4: not an access-log line with a duration as its last field",
        f"{log}:5: not an access-log line with a duration as its last field",
    ]
    assert done.stdout.splitlines() == [
        "timestamp,endpoint,duration,status",
        "2026-10-01T08:00:00+01:00,GET /fhir/Patient?identifier=REDACTED,120.000,200",
        "2026-10-01T08:00:01+01:00,GET /fhir/Patient/{id},2400.000,200",
        "2026-10-01T08:00:02+01:00,GET /fhir/Observation?patient=REDACTED&category=REDACTED,80.000,503",
    ]
    for private in ("MRN123456", "pat-0042", "dr.jones", "10.1.2.3", "Mozilla"):
        assert private not in done.stdout
    csv_path = tmp_path / "epr.csv"
    csv_path.write_text(done.stdout, encoding="utf-8")
    data = tmp_path / "data"
    config = write_config(tmp_path / "c.yaml", "http://127.0.0.1:9", data)
    result = CliRunner().invoke(main, ["import", "-c", str(config), str(csv_path)])
    assert result.exit_code == 0, result.output
    con = connect(data)
    rows = con.execute("SELECT epoch_ms(start), http_method, url_template, http_status, duration_s "
                       "FROM requests ORDER BY start").fetchall()
    con.close()
    assert [row[1:] for row in rows] == [
        ("GET", "/fhir/Patient", 200, 0.12), ("GET", "/fhir/Patient/{id}", 200, 2.4),
        ("GET", "/fhir/Observation", 503, 0.08)]
    assert rows[0][0] == 1_790_838_000_000  # 2026-10-01T07:00:00Z


def test_an_apache_log_in_microseconds(tmp_path: Path) -> None:
    done = convert(tmp_path, APACHE, "--duration-unit", "us")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == "2026-10-01T07:00:04+00:00,POST /fhir/Observation,45.000,201"
