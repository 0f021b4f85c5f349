"""What the SQLite writer spends per event, in process, on C's shape.

``python -m bench.writer_cost [--events N]``: commits message drafts in
batches of 30 over 100 incidents (workload C: a batch touches about 30
logs), with ``synchronous=OFF`` so the figure is the writer's CPU and page
writes, not the disk's fsync. Prints µs per event, median of 3 rounds, each
on a fresh file. Run it from two checkouts to compare them (the writer is
not pluggable); the machine's load is printed with it.

Then what a commit writes: WAL pages (frames) per commit of one event (a
quiet deployment: every event its own commit) and of six (C's batches at
3,000 posts/s), by the table or index each page belongs to. Every page is
4 KiB written to the WAL, and again to the file at the next checkpoint.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import struct
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


#: The WAL's header and each frame's header (sqlite.org/fileformat2.html, "WAL file format").
WAL_HEADER = 32
FRAME_HEADER = 24


def pages_per_commit(batch: int, events: int = 3_000) -> tuple[float, collections.Counter[str]]:
    """WAL frames per commit of ``batch`` events, and per commit by owning table or index.

    After as many events again as warm-up, so the trees have grown past their first pages.
    """
    with tempfile.TemporaryDirectory(prefix="liaison-wal-") as tmp:
        path = Path(tmp) / "events.db"
        writer = _Writer(SqliteConfig(path, synchronous="OFF"))
        names = [f"bench-{i}" for i in range(INCIDENTS)]
        writer.commit([_draft(name, 0, created=True) for name in names])
        drafts = [_draft(names[k % INCIDENTS], k // INCIDENTS + 1) for k in range(2 * events)]
        for start in range(0, events, batch):
            writer.commit(drafts[start : start + batch])
        writer.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        writer.db.execute("PRAGMA wal_autocheckpoint=0")  # every frame stays to be counted
        for start in range(events, 2 * events, batch):
            writer.commit(drafts[start : start + batch])
        owner = dict(
            (page, name) for name, page in writer.db.execute("SELECT name, pageno FROM dbstat")
        )
        data = (path.parent / "events.db-wal").read_bytes()
        writer.db.close()
    (page_size,) = struct.unpack(">I", data[8:12])
    owners: collections.Counter[str] = collections.Counter()
    frames = done = 0
    frame = FRAME_HEADER + page_size
    for offset in range(WAL_HEADER, len(data) - frame + 1, frame):
        page, size_after_commit = struct.unpack(">II", data[offset : offset + 8])
        owners[owner.get(page, "(free)")] += 1
        frames += 1
        done += size_after_commit != 0  # the last frame of each commit
    return frames / done, collections.Counter({k: v / done for k, v in owners.items()})


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
    for batch in (1, 6):
        frames, owners = pages_per_commit(batch)
        top = ", ".join(f"{name} {n:.1f}" for name, n in owners.most_common(6))
        print(f"a commit of {batch} event(s) writes {frames:.1f} WAL pages: {top}")


if __name__ == "__main__":
    main()
