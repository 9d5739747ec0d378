"""``python -m benchmarks.render FILE.json``: a results file as the Markdown tables of
docs/benchmarks.md (the machine, then one table per benchmark)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["markdown"]


def _value(figure: Mapping[str, Any]) -> str:
    value, unit = figure["value"], figure["unit"]
    if value is None:
        return "n/a"
    if unit == "x":
        return f"{value:.2f}x"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}" if abs(value) < 10 else f"{value:.1f} {unit}"


def markdown(document: Mapping[str, Any], sections: Sequence[str] = ()) -> str:
    """The machine line and a table per benchmark (only ``sections`` when given)."""
    m = document["machine"]
    lines = [
        f"Run {m['date_utc']} on {m['nproc']} x {m['cpu_model']}, {m['ram_gb']} GB RAM, {m['os']}; "
        f"Python {m['python']}, DuckDB {m['duckdb']}, pyarrow {m['pyarrow']}, pandas {m['pandas']}; "
        f"load average at start {m.get('load_average')}; whole run {document.get('elapsed_s')} s.",
        "",
    ]
    benchmarks = list(dict.fromkeys(f["benchmark"] for f in document["figures"]))
    for benchmark in benchmarks:
        if sections and benchmark not in sections:
            continue
        lines += [f"#### {benchmark}", "", "| figure | value | n | target | met | note |", "|---|---|---|---|---|---|"]
        for f in document["figures"]:
            if f["benchmark"] != benchmark:
                continue
            met = "" if f["met"] is None else ("yes" if f["met"] else "**no**")
            note = str(f.get("note", "")).replace("|", "\\|")
            label = str(f["name"]).replace("|", "\\|")
            lines.append(f"| {label} | {_value(f)} | {f['samples']} | {f['target']} | {met} | {note} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(markdown(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")), sys.argv[2:]) + "\n")
