"""An example CAD bot for Liaison: open an incident for a CAD number, post to it, read the feed.

Run it (Python 3.11+, aiohttp)::

    export LIAISON_URL=http://127.0.0.1:8080
    export LIAISON_KEY=$(liaison key create cad-bot --name cad --coordinator \\
                         --commands incident.create,message.post)
    python cad_bot.py CAD-2026-0042 "Unit 12 on scene" --entries 10 --timeout 60

It prints one JSON line per step: the incident it found or opened, the ack of
its post, then each feed entry, and exits after ``--entries`` entries or
``--timeout`` seconds. It depends on nothing of Liaison: copy it, and replace
``handle_entry`` with your own processing. What it shows (protocol/SPEC.md):

* **API key** (4.3): the bot sends ``Authorization: Bearer lk_...`` on every
  request; nothing to log in to or refresh. Opening incidents needs a key
  made with ``--coordinator``.
* **The CAD number** (18.3): ``GET /api/v1/incidents?ref=`` finds the incident
  carrying it; only if there is none does the bot open one with
  ``external_ref`` set.
* **Idempotency** (12): every write carries an ``id`` derived from what it
  does (the CAD number, the text), so running the bot again, or retrying
  after a timeout, never stores anything twice: the server answers the
  original event with ``duplicate: true``.
* **The change feed** (24): what changed in every incident the organisation
  takes part in, from a cursor the bot keeps in ``--state``. Run again, it
  goes on where it stopped, with no entry lost or repeated. A cursor that can
  no longer be served is ``409 resync_required``: the bot starts from "now".
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

#: The longest a feed request waits for an entry (the server allows 30 s).
LONG_POLL_S = 25


class LiaisonError(Exception):
    """The server refused a request: ``code`` is its stable error code (SPEC 16)."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        self.status, self.code = status, str(error.get("code"))
        self.detail: dict[str, Any] = error.get("detail") or {}
        super().__init__(f"{status} {self.code}: {error.get('message')}")


class Liaison:
    """The few REST calls a CAD bot needs, authenticated with its API key."""

    def __init__(self, http: aiohttp.ClientSession, url: str, key: str) -> None:
        self.http, self.url = http, url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.http.request(
            method, self.url + path, headers=self.headers, **kwargs
        ) as resp:
            answer = await resp.json()
            if resp.status >= 400:
                raise LiaisonError(resp.status, answer["error"])
            return answer

    async def incident_for(self, ref: str, title: str) -> tuple[str, bool]:
        """The incident carrying CAD number ``ref``, opened if there is none yet."""
        found = await self.call("GET", "/api/v1/incidents", params={"ref": ref})
        if found["incidents"]:
            return str(found["incidents"][0]["id"]), False
        opened = await self.call(
            "POST",
            "/api/v1/incidents",
            json={
                "id": f"open-{ref}",  # one incident per CAD number, however often we run
                "title": title,
                "category": "cad",
                "external_ref": ref,
            },
        )
        return str(opened["incident"]), True

    async def post(self, incident: str, text: str) -> dict[str, Any]:
        """Post ``text`` once: the same text for the same CAD number is one message."""
        digest = hashlib.sha256(f"{incident}\n{text}".encode()).hexdigest()[:24]
        command = {"type": "message.post", "id": f"msg-{digest}", "incident": incident}
        answer: dict[str, Any] = await self.call(
            "POST", "/api/v1/commands", json={**command, "text": text}
        )
        return answer

    async def feed(
        self, after: str | None, kinds: str, wait: int = 0, limit: int = 100
    ) -> dict[str, Any]:
        """One page of the change feed after ``after`` (no cursor: the cursor of now)."""
        params = {"kinds": kinds, "wait": str(wait), "limit": str(limit)}
        if after:
            params["after"] = after
        try:
            page: dict[str, Any] = await self.call("GET", "/api/v1/feed", params=params)
        except LiaisonError as exc:
            if exc.code != "resync_required":
                raise
            # Our cursor is of data that was replaced: reload what you keep
            # (the incident list) and go on from now, the cursor it gives.
            return {"entries": [], "cursor": exc.detail["cursor"], "more": True}
        return page


class CursorFile:
    """Where the bot keeps its feed cursor between runs (a few bytes, written in place)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        """The kept cursor; None on a first run."""
        if not self.path.exists():
            return None
        return self.path.read_text().strip() or None

    def save(self, cursor: str) -> None:
        self.path.write_text(cursor)


def handle_entry(entry: dict[str, Any]) -> None:
    """Your processing of one feed entry goes here."""
    print(json.dumps({"entry": entry}), flush=True)


async def follow_feed(
    liaison: Liaison, state: CursorFile, kinds: str, max_entries: int, timeout_s: float
) -> int:
    """Handle feed entries from the kept cursor until ``max_entries`` or the timeout."""
    handled = 0
    deadline = time.monotonic() + timeout_s
    while handled < max_entries and (left := deadline - time.monotonic()) > 0:
        wait = min(LONG_POLL_S, max(1, int(left)))
        page = await liaison.feed(state.load(), kinds, wait, limit=max_entries - handled)
        for entry in page["entries"]:
            handle_entry(entry)
            handled += 1
        # Only after handling the whole page: a crash re-reads it, never skips.
        state.save(page["cursor"])
    return handled


async def run(args: argparse.Namespace, url: str, key: str) -> None:
    async with aiohttp.ClientSession() as http:
        liaison = Liaison(http, url, key)
        state = CursorFile(args.state)
        # First run: take the cursor of now before writing, so the feed shows our own changes.
        if state.load() is None:
            state.save((await liaison.feed(None, args.kinds))["cursor"])
        title = args.title or f"CAD {args.ref}"
        incident, opened = await liaison.incident_for(args.ref, title)
        print(json.dumps({"incident": incident, "ref": args.ref, "opened": opened}), flush=True)
        if args.text:
            ack = await liaison.post(incident, args.text)
            print(json.dumps({"posted": ack}), flush=True)
        handled = await follow_feed(liaison, state, args.kinds, args.entries, args.timeout)
        print(json.dumps({"handled": handled, "cursor": state.load()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ref", help="the CAD number (1-64 of A-Z a-z 0-9 - _ . / : #)")
    parser.add_argument("text", nargs="?", help="a message to post to its incident, once")
    parser.add_argument("--title", help="the title if the incident is opened (CAD <ref>)")
    parser.add_argument("--url", default=os.environ.get("LIAISON_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--state", type=Path, default=Path("cad_bot.cursor"), help="cursor file")
    parser.add_argument("--kinds", default="event", help="feed kinds (SPEC 24.1), comma-separated")
    parser.add_argument("--entries", type=int, default=100, help="stop after this many entries")
    parser.add_argument("--timeout", type=float, default=60.0, help="stop after this many s")
    args = parser.parse_args()
    key = os.environ.get("LIAISON_KEY", "")
    if not key.startswith("lk_"):
        sys.exit("set LIAISON_KEY to the bot's API key (liaison key create cad-bot ...)")
    try:
        asyncio.run(run(args, args.url, key))
    except (LiaisonError, aiohttp.ClientError) as exc:
        sys.exit(f"cad_bot: {exc}")


if __name__ == "__main__":
    main()
