"""Turn an nginx or Apache access log into request timings for `wardwatch import`.

The combined log format has no duration, so the EPR's web server must log one as the line's last
field (Wardwatch needs how long each request took):

    nginx:   log_format timed '$remote_addr - $remote_user [$time_local] "$request" $status '
                              '$body_bytes_sent "$http_referer" "$http_user_agent" $request_time';
             (seconds, with millisecond resolution: --duration-unit s, the default)
    Apache:  LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-agent}i\\" %D" timed
             (microseconds: --duration-unit us)

Usage:

    python examples/convert-access-log.py access.log [more.log ...] > epr-timings.csv
    wardwatch import -c wardwatch.yaml epr-timings.csv

The CSV has the columns `wardwatch import` reads: timestamp (ISO 8601 with the log's UTC offset),
endpoint ("GET /fhir/Patient/{id}"), duration (milliseconds, the import's default unit) and status.
Nothing identifying leaves the log: paths are written as templates and query values as REDACTED
(the same rules as the import itself), and client addresses, user names, referrers and user agents
are not written at all. A line that is not in the format is reported on standard error as
FILE:LINE: reason and skipped; the exit code is then 1 (0 when every line converted).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from store.redact import template_target

UNITS_MS = {"s": 1000.0, "ms": 1.0, "us": 0.001}
LINE = re.compile(
    r'^\S+ \S+ .*? \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<target>\S+)(?: HTTP/[0-9.]+)?" '
    r"(?P<status>\d{3}) \S+(?: \"(?:[^\"\\]|\\.)*\" \"(?:[^\"\\]|\\.)*\")? (?P<duration>[0-9.]+)\s*$"
)


def convert(lines: Iterator[str], unit_ms: float) -> Iterator[tuple[int, list[str] | str]]:
    """``(line number, [timestamp, endpoint, duration_ms, status])``, or a reason for a bad line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        match = LINE.match(line)
        if match is None:
            yield number, "not an access-log line with a duration as its last field"
            continue
        try:
            moment = dt.datetime.strptime(match["time"], "%d/%b/%Y:%H:%M:%S %z")
        except ValueError:
            yield number, f"time {match['time']!r} is not [day/Mon/year:HH:MM:SS +zone]"
            continue
        duration_ms = float(match["duration"]) * unit_ms
        if not math.isfinite(duration_ms):
            yield number, f"duration {match['duration']!r} is not a number"
            continue
        endpoint = f"{match['method']} {template_target(match['target'])}"
        yield number, [moment.isoformat(), endpoint, f"{duration_ms:.3f}", match["status"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", type=Path, help="access log files")
    parser.add_argument("--duration-unit", choices=sorted(UNITS_MS), default="s",
                        help="unit of the last field: s for nginx $request_time, us for Apache %%D")
    args = parser.parse_args(argv)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["timestamp", "endpoint", "duration", "status"])
    skipped = 0
    for path in args.logs:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, row in convert(f, UNITS_MS[args.duration_unit]):
                if isinstance(row, str):
                    print(f"{path}:{number}: {row}", file=sys.stderr)
                    skipped += 1
                else:
                    writer.writerow(row)
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
