"""What the SQLite writer spends per event, in process, on C's shape.

``python -m bench.writer_cost [--events N]``: commits message drafts in
batches of 30 over 100 incidents (workload C: a batch touches about 30
logs), with ``synchronous=OFF`` so the figure is the writer's CPU and page
writes, not the disk's fsync. Prints µs per event, median of 3 rounds, each
on a fresh file. Run it from two checkouts to compare them (the writer is
not pluggable); the machine's load is printed with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.cold_start import _draft
from server.storage.sqlite import SqliteConfig, _Writer

INCIDENTS = 100
BATCH = 30


def one_round(events: int) -> float:
    """Seconds per event of ``events`` message commits on a fresh file."""
    with tempfile.TemporaryDirectory(prefix="liaison-writer-") as tmp:
        writer = _Writer(SqliteConfig(Path(tmp) / "events.db", synchronous="OFF"))
        names = [f"bench-{i}" for i in range(INCIDENTS)]
        writer.commit([_draft(name, 0, created=True) for name in names])
        drafts = [_draft(names[k % INCIDENTS], k // INCIDENTS + 1) for k in range(events)]
        started = time.perf_counter()
        for start in range(0, events, BATCH):
            writer.commit(drafts[start : start + BATCH])
        elapsed = time.perf_counter() - started
        writer.db.close()
    return elapsed / events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=15_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures = [one_round(args.events) for _ in range(args.rounds)]
    load = os.getloadavg()[0]
    print(
        f"writer: {statistics.median(figures) * 1e6:.1f} µs per event"
        f" (median of {args.rounds} x {args.events} events, batches of {BATCH}"
        f" over {INCIDENTS} incidents, synchronous=OFF; load average {load:.1f})"
    )


if __name__ == "__main__":
    main()
