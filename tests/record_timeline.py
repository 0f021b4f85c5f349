"""Record ``tests/fixtures/timeline-joint.json`` from a real server run.

    .venv/bin/python -m tests.record_timeline [output.json]

Starts ``liaison serve --demo`` on a loopback port and a temporary data
directory, plays ``tests/timeline_script.py`` over real Socket.IO connections
(one per demo user), then records, for each organisation, what one of its
members is served over REST: the timeline (the envelopes that organisation
receives, ``restricted`` placeholders included) and the incident view. Both
differential runners read the file: ``tests/unit/test_timeline_differential.py``
and ``client_web/test/timeline.test.js``. Re-record after a protocol change
that alters bodies or views (and look at the diff of the fixture).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from liaison_client import LiaisonClient
from tests.conftest import DEMO_PASSWORD, LiaisonServer
from tests.timeline_script import ORGS, READER, Ack, run_script
from tests.timeline_shape import shape_of_view

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "timeline-joint.json"
USERS = ("dispatch", "officer", "outreach", "shelter-lead")


async def record(url: str) -> dict[str, Any]:
    clients: dict[str, LiaisonClient] = {}
    try:
        for username in USERS:
            client = clients[username] = LiaisonClient(url)
            await client.login(username, DEMO_PASSWORD)
            await client.connect()

        async def execute(username: str, command: dict[str, Any]) -> Ack:
            return await clients[username].send(command)

        incident = await run_script(execute, tag="rec")
        orgs: dict[str, Any] = {}
        for org in ORGS:
            reader = clients[READER[org]]
            view = await reader.incident(incident)
            orgs[org] = {
                "reader": reader.user,
                "envelopes": await reader.timeline(incident),
                "view": view,
                "expected": shape_of_view(view),
            }
        return {
            "about": (
                "Recorded by `python -m tests.record_timeline` from a real server run of"
                " tests/timeline_script.py. Per organisation: the envelopes it receives"
                " (REST timeline) and the incident view it is served; `expected` is the view"
                " in the common shape both differential tests compare (tests/timeline_shape.py)."
            ),
            "incident": incident,
            "orgs": orgs,
        }
    finally:
        for client in clients.values():
            await client.close()


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else FIXTURE
    with tempfile.TemporaryDirectory(prefix="liaison-record-") as tmp:
        server = LiaisonServer(Path(tmp) / "data")
        server.start()
        try:
            data = asyncio.run(record(server.url))
        finally:
            server.stop()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    counts = {org: len(d["envelopes"]) for org, d in data["orgs"].items()}
    print(f"wrote {out}: {counts} envelopes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
