"""A store writer to be killed with SIGKILL at a random moment (run as a script).

It is a small fork server: it imports the store once, then reads one JSON command per line on
standard input and forks a writer for each, answering with the writer's pid on standard output.
Each writer writes batches with ``store.write_spans`` (and, in ``compact`` mode, compacts the
store after each batch) until it is killed (in ``upgrade`` mode it upgrades an older store once); after each batch's ``write_spans`` has returned it
appends the batch's span ids as one line to its report file, so a line ending in a newline names
spans whose write had completed.

Span ids are ``<kill:04x><batch:06x><row:06x>``: the parent knows every id a writer could write.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from pathlib import Path

NS = 1_000_000_000
DAY0_NS = 1_795_000_000 * NS  # 2026-11-18 UTC; a batch may straddle two UTC dates


def span_id(kill: int, batch: int, row: int) -> str:
    return f"{kill:04x}{batch:06x}{row:06x}"


def rows(kill: int, batch: int, count: int, rng: random.Random) -> list[dict[str, object]]:
    from store import schema

    start = DAY0_NS + rng.randrange(0, 2 * 86_400) * NS
    out = []
    for row in range(count):
        out.append({
            schema.TIMESTAMP: start + row * 1_000_000,
            schema.TRACE_ID: f"{kill:016x}{batch:016x}",
            schema.SPAN_ID: span_id(kill, batch, row),
            schema.SPAN_NAME: "campaign",
            schema.DURATION: 1_000_000,
            schema.RESOURCE_ATTRIBUTES: {schema.SERVICE_NAME_ATTR: "campaign"},
            schema.SPAN_ATTRIBUTES: {schema.ATTR_SPAN_TYPE: schema.SPAN_TYPE_STEP, "campaign.kill": kill},
        })
    return out


def writer(command: dict[str, object]) -> None:
    from store import compact, upgrade_store, write_spans

    store = Path(str(command["store"]))
    if command["mode"] == "upgrade":  # rewrite an older store in place, once
        upgrade_store(store)
        Path(str(command["report"])).write_text("done\n", encoding="ascii")
        return
    kill = int(command["kill"])  # type: ignore[arg-type]
    rng = random.Random(int(command["seed"]))  # type: ignore[arg-type]
    compacting = command["mode"] == "compact"
    report = os.open(str(command["report"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    batch = 0
    while True:
        count = rng.randint(1, 40)
        write_spans(store, rows(kill, batch, count, rng))
        # the batch's write has completed: say so (one line, one write call)
        ids = [span_id(kill, batch, r) for r in range(count)]
        os.write(report, (" ".join(ids) + "\n").encode())
        if compacting:
            compact(store, grace_s=float(command.get("grace_s", 0.0)))  # type: ignore[arg-type]
        batch += 1


def warm_up() -> None:
    """One write and one compaction in a scratch store, so each writer starts at full speed."""
    import tempfile

    from store import compact, write_spans

    with tempfile.TemporaryDirectory() as scratch:
        rng = random.Random(0)
        for batch in range(2):
            write_spans(Path(scratch), rows(0xFFFF, batch, 3, rng))
        compact(Path(scratch), grace_s=0.0)


def main() -> None:
    warm_up()  # imports and initialises everything once, before forking
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # writers are reaped by the kernel
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                writer(command)
                os._exit(0)
            finally:
                os._exit(1)
        print(json.dumps({"pid": pid}), flush=True)


if __name__ == "__main__":
    main()
