"""CPU cost of one delivery in the hub, in process, without sockets.

``python -m bench.fanout_cpu [--subscribers 200] [--events 64] [--reps 200]``

Workload A's server time is mostly fan-out; on a shared machine its
deliveries/s swing with whatever else runs. This isolates the hub's part
(audience, encode once, in-order check, push) on a real SQLite log and the
real projection, and reports the best of several timed rounds, which is far
steadier than a load test: compare two commits with it, then confirm with
``python -m bench`` on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from protocol.v1 import FollowTarget
from server.backends import running
from server.domain.events import EventDraft, StoredEvent
from server.domain.sharing import NoAgreements
from server.fanout.presence import MemoryPresence
from server.services.hub import Hub, Piece
from server.services.projections import Projections
from server.settings import Settings

INCIDENT = "inc-bench"


class CountingSubscriber:
    """What the hub sees of a connection; push keeps the bytes like an outbox."""

    encoding = "json"

    def __init__(self, n: int, org: str) -> None:
        self.org, self.user, self.connection = org, f"u{n}", f"c{n}"
        self.pending: list[Piece] = []

    def sees(self, incident: str) -> bool:
        return True

    def push(self, piece: Piece) -> bool:
        self.pending.append(piece)
        return True

    def push_many(self, pieces: Sequence[Piece]) -> int:
        self.pending.extend(pieces)
        return len(pieces)

    async def push_backlog(self, piece: Piece) -> bool:
        return self.push(piece)

    def resume_required(self, incident: str) -> None:
        raise AssertionError("a bench subscriber never falls behind")


def draft(cid: str, kind: str = "message.posted") -> EventDraft:
    creating = kind == "incident.created"
    body = (
        {"title": "bench", "category": "c", "priority": "normal", "orgs": ["police", "shelter"]}
        if creating
        else {"text": f"message {cid} with a realistic length of some forty chars"}
    )
    return EventDraft(
        incident=INCIDENT,
        type=kind,
        actor_user="dispatch",
        actor_org="police",
        actor_name="Dispatch",
        client_id=cid,
        visibility=None,
        body=body,
        epoch="ep" if creating else None,
    )


async def measure(subscribers: int, events: int, reps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), sqlite_synchronous="NORMAL")
        async with running(settings) as backends:
            await backends.log.append(draft("create", "incident.created"))
            hub = Hub(
                backends.log,
                backends.broker,
                Projections(backends.log, backends.broker),
                MemoryPresence(),
                NoAgreements(),
            )
            subs = [
                CountingSubscriber(n, "police" if n % 2 else "shelter") for n in range(subscribers)
            ]
            for sub in subs:
                await hub.follow(sub, FollowTarget(incident=INCIDENT, after_seq=1, epoch=None))
            batch: list[StoredEvent] = []
            for n in range(events):
                batch.append((await backends.log.append(draft(f"m{n}"))).event)
            # Let the live path deliver the appended events once, then replay
            # the same batch by hand: the followers' positions are wound back
            # before each round, so each round delivers every event again.
            await asyncio.sleep(0)
            followers = hub._followers[INCIDENT]
            best = float("inf")
            for _ in range(reps):
                for fs in followers.values():
                    fs.last = batch[0].seq - 1
                for sub in subs:
                    sub.pending.clear()
                started = time.perf_counter()
                hub._on_events(INCIDENT, batch)
                best = min(best, time.perf_counter() - started)
            delivered = sum(len(s.pending) for s in subs)
            assert delivered == subscribers * events, delivered
            await hub.close()
    per_delivery_ns = best / (subscribers * events) * 1e9
    return {
        "subscribers": subscribers,
        "events": events,
        "best_round_ms": best * 1e3,
        "ns_per_delivery": per_delivery_ns,
        "deliveries_per_s_one_core": 1e9 / per_delivery_ns,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--events", type=int, default=64)
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    result = asyncio.run(measure(args.subscribers, args.events, args.reps))
    for key, value in result.items():
        print(f"{key:>28}: {value:,.1f}")


if __name__ == "__main__":
    main()
