"""One contender of the memory benchmark, in a process of its own, so its peak RSS is its own.

``python -m benchmarks.report_child report STORE`` builds the month's report as the report
benchmark configures it; ``hand STORE`` runs the hand-written query of the same figures. Either
prints one JSON line: ``seconds`` (the work, imports excluded), ``vmhwm_mb`` (the process's peak
RSS, read from ``/proc/self/status`` at the end) and ``figures`` (to check that they agree).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str]) -> int:
    what, store = argv[0], Path(argv[1])
    import analysis
    from analysis.budget import calendar_month
    from analysis.report import build_report
    from benchmarks import report

    start, end = calendar_month(2026, 10, report.TIMEZONE)
    began = time.perf_counter()
    if what == "report":
        slas, objectives, calendar = report.report_inputs()
        with analysis.open_store(store, calendar=calendar) as opened:
            built = build_report(opened, slas, objectives, calendar, "2026-10", timezone=report.TIMEZONE)
        figures = {"sla": built.slas[0].value,
                   **{f"share {r.site}": float(r.share_good) for r in built.objectives[0].scopes.itertuples()},
                   **{f"p90 {r.site}": float(r.p90_s) for r in built.objectives[0].scopes.itertuples()}}
    else:
        frame = report._hand(report.hand_written_report(store), start, end)
        rows = {(str(r.figure), str(r.scope)): float(r.value) for r in frame.itertuples()}
        figures = {"sla": rows[("sla share within 2 s", "all")],
                   **{f"share {s}": v for (f, s), v in rows.items() if f == "objective share good" and s != "all"},
                   **{f"p90 {s}": v for (f, s), v in rows.items() if f == "ward rounds p90"}}
    seconds = time.perf_counter() - began
    print(json.dumps({"seconds": seconds, "vmhwm_mb": _vmhwm_mb(), "figures": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
