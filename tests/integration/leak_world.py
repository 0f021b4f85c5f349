"""The leak test's world: one connected client per principal, what each received,
and the checks of every read against the oracle (tests/sharing_oracle.py).

Used by tests/integration/test_leak_stateful.py, which drives it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from hypothesis.errors import HypothesisException

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import DEMO_PASSWORD
from tests.sharing_oracle import (
    AGREEMENTS,
    DEMO_AGREEMENTS,
    REDACTED_MARK,
    Audience,
    EventMeta,
    IncidentFacts,
    Reader,
    entitled,
    responders_for,
    sees,
    sees_capacity,
    set_agreements,
    updated_for,
    visible_online,
)

T = TypeVar("T")
PLACEHOLDER_KEYS = {"v", "type", "incident", "seq", "epoch", "digest", "hash"}
CANARY = re.compile(r"cnry-\d{7}")
#: Read paths of incident events, where a capacity note never goes (SPEC 27.2).
INCIDENT_PATHS = frozenset({"socket", "webhook"})
INCIDENT_ROUTES = ("/api/v1/incidents", "/api/v1/search", "/api/v1/feed", "/api/v1/commands")


class Leak(AssertionError):
    """A finding: content reached a reader, or an answer told one more than it may know."""


# --------------------------------------------------------------------- the world


@dataclass(slots=True)
class Seat:
    """One principal's live client and what it has received."""

    reader: Reader
    client: LiaisonClient
    frames: list[str] = field(default_factory=list)
    scanned: int = 0
    #: incident -> seqs delivered in order (the client's processed stream).
    delivered: dict[str, list[int]] = field(default_factory=dict)
    #: Canaries this principal wrote itself (an echo of them is no leak).
    own: set[str] = field(default_factory=set)
    #: When and why the connection dropped (the test's own disconnects included).
    disconnects: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Hook:
    """One organisation's webhook subscription and the receiver it delivers to.

    Its reader is the organisation's, with the subscription's synthetic user
    (nobody's RED recipient): a webhook must get what such a reader may read.
    """

    reader: Reader
    endpoint: Any  # tests/integration/webhook_endpoint.py Endpoint
    scanned: int = 0
    #: incident -> seqs received (each webhook-id once), in arrival order.
    delivered: dict[str, list[int]] = field(default_factory=dict)


@dataclass(slots=True)
class Archived:
    """An incident the test had archived (SPEC 25.3), and what was read of it before."""

    #: reader user -> the envelopes of its live export just before archiving.
    exports: dict[str, list[dict[str, Any]]]
    #: The agreements' generation then: the archive is shaped under today's (SPEC 9.4).
    generation: int


class World:
    """Servers, one connected client per principal, and the oracle's records."""

    def __init__(self, loop: asyncio.AbstractEventLoop, urls: list[str]) -> None:
        self.loop, self.urls = loop, urls
        self.seats: dict[str, Seat] = {}
        self.hooks: list[Hook] = []
        #: The agreements in force at each generation, and the generation at
        #: which each event was stored (for checks of what is delivered later).
        set_agreements(DEMO_AGREEMENTS)  # a new server: the demo's agreements only
        self.rules: list[dict[str, Any]] = [dict(AGREEMENTS)]
        self.generation = 0
        self.generation_of: dict[tuple[str, int], int] = {}
        #: One admin client per organisation (agreements, keys, webhooks).
        self.admins: dict[str, LiaisonClient] = {}
        self.org_of: dict[str, str] = {}
        self.incidents: dict[str, IncidentFacts] = {}
        self.owner: dict[str, tuple[str, int]] = {}  # canary -> (incident, seq)
        self.counter = 0
        self.steps = 0
        self.runs = 0
        self.failure: BaseException | None = None
        self.server_logs: list[Path] = []
        self.log: collections.deque[str] = collections.deque(maxlen=12)
        self.raw: dict[tuple[str, str], int] = {}
        #: The feed (SPEC 22): each user's cursor, and per (user, incident) the
        #: last seq its ``event`` entries reached (for loss and duplicates).
        self.feed_cursors: dict[str, str] = {}
        self.feed_seen: dict[tuple[str, str], int] = {}
        self.stats: collections.Counter[str] = collections.Counter()
        #: The deployment's administrator: retention policies and runs (SPEC 25.2).
        self.deployment: LiaisonClient | None = None
        #: Incidents archived by the test (still in ``incidents``, for their canaries).
        self.archived: dict[str, Archived] = {}
        #: Canaries of capacity notes, and whose (SPEC 27.2: no incident's, own rules).
        self.capacity_canaries: dict[str, str] = {}
        #: A police bot whose key is scoped to an incident: a capacity reader only.
        self.scoped: Seat | None = None
        #: org -> the note it last published; user -> its ``/capacity/changes`` pos.
        self.capacity_notes: dict[str, str] = {}
        self.capacity_pos: dict[str, int] = {}
        #: Each principal's phone number (user id -> number), unique to it: a
        #: number may reach its own organisation (GET /api/v1/users) and, for
        #: an incident's liaison, that incident's participants (GET .../contacts)
        #: and nothing else; every other answer and frame is scanned for them.
        self.phones: dict[str, str] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return self.loop.run_until_complete(coro)
        except BaseException as exc:
            self.failed(exc)
            raise

    def failed(self, exc: BaseException) -> None:
        """Keep the first failure: Hypothesis replays a failing example to report
        it, and in a world that moved on the replay goes differently (a
        ``Flaky...`` error) and would hide what was found."""
        if not isinstance(exc, Exception) or isinstance(exc, HypothesisException):
            return  # Hypothesis's own control flow (an example at its bound on choices)
        if self.failure is None:
            self.failure = exc
            print(f"\nfailed at step {self.steps}; the last actions: {list(self.log)}")
            for user, seat in self.seats.items():
                sio = seat.client.sio
                print(
                    f"  {user}: connected {sio.connected}, notices {seat.client.notices[-3:]}, "
                    f"disconnects {seat.disconnects[-3:]}"
                )
            for path in self.server_logs:
                print(f"  {path}: {path.read_text()[-3000:]}")

    def canary(self) -> str:
        self.counter += 1
        return f"cnry-{self.counter:07d}"

    # ------------------------------------------------------------- clients

    async def seat(
        self, username: str, org: str, role: str, url: str, api_key: str | None = None
    ) -> None:
        """Seat a principal: a person logs in, a bot uses its API key (SPEC 4.3)."""
        client = LiaisonClient(url, api_key=api_key)
        if api_key is None:
            await login(client, username)
        else:
            client.user = await client.request("GET", "/api/v1/me")
        assert client.user is not None
        reader = Reader(client.user["id"], org, role)
        self.org_of[reader.user] = org
        self.seats[reader.user] = Seat(reader, client)
        spy(self.seats[reader.user])
        await client.connect()

    async def move(self, user: str, url: str) -> None:
        """Reconnect ``user`` as a new connection (same token and positions) on ``url``."""
        old = self.seats[user]
        self.drain(old)
        await old.client.close()
        client = LiaisonClient(url)
        client.token, client.refresh_token, client.expires = (
            old.client.token,
            old.client.refresh_token,
            old.client.expires,
        )
        client.user, client.positions = old.client.user, old.client.positions
        seat = Seat(old.reader, client, old.frames, old.scanned, old.delivered, old.own)
        seat.disconnects = old.disconnects
        self.seats[user] = seat
        spy(seat)
        await client.connect()  # re-follows every remembered position

    async def close(self) -> None:
        for seat in self.seats.values():
            await seat.client.close()
        for hook in self.hooks:
            await hook.endpoint.stop()
        for admin in self.admins.values():
            await admin.close()
        if self.deployment is not None:
            await self.deployment.close()
        if self.scoped is not None:
            await self.scoped.client.close()
        set_agreements(DEMO_AGREEMENTS)  # the oracle's module state, as the next test expects

    # ------------------------------------------------------------- checks

    def drain(self, seat: Seat) -> None:
        """Scan new frames for canaries and envelopes; collect processed events."""
        for frame in seat.frames[seat.scanned :]:
            self.scan(seat, frame, "socket")
            for env in envelopes(frame):
                self.check_envelope(seat.reader, env, "live")
                self.count_raw(seat, env)
        seat.scanned = len(seat.frames)
        queue = seat.client.events
        while not queue.empty():
            env = queue.get_nowait()
            got = seat.delivered.setdefault(env["incident"], [])
            if env["seq"] != (got[-1] if got else 0) + 1:
                raise Leak(
                    f"{seat.reader.user}: {env['incident']} delivered {env['seq']} after {got[-5:]}"
                )
            got.append(env["seq"])

    def count_raw(self, seat: Seat, env: dict[str, Any]) -> None:
        """Repeats (normal after a re-follow) and gaps (the client re-follows) on the wire."""
        key = (seat.reader.user, env["incident"])
        last = self.raw.get(key, 0)
        if env["seq"] <= last:
            self.stats["live repeats on the wire"] += 1
        elif env["seq"] > last + 1 and last:
            self.stats["live gaps on the wire"] += 1
        self.raw[key] = env["seq"]

    def drain_all(self) -> None:
        for seat in self.seats.values():
            self.drain(seat)
        for hook in self.hooks:
            self.drain_hook(hook)

    def drain_hook(self, hook: Hook) -> None:
        """What a webhook receiver got: the read checks of a live reader, and order."""
        received = hook.endpoint.receiver.events
        for _, env in received[hook.scanned :]:
            self.under_some_rules(env, partial(self.check_hook, hook, env))
            got = hook.delivered.setdefault(env["incident"], [])
            if got and env["seq"] != got[-1] + 1:
                raise Leak(f"webhook of {hook.reader.org}: {env['seq']} after {got[-5:]}")
            got.append(env["seq"])
            self.stats["webhook deliveries"] += 1
        hook.scanned = len(received)
        if hook.endpoint.receiver.refused:
            raise Leak(f"webhook of {hook.reader.org}: a delivery failed its signature check")

    def check_hook(self, hook: Hook, env: dict[str, Any]) -> None:
        self.scan_as(hook.reader, set(), json.dumps(env), "webhook")
        self.check_envelope(hook.reader, env, "webhook")

    def under_some_rules(self, env: dict[str, Any], check: Callable[[], None]) -> None:
        """Run ``check`` under the agreements in force at some moment since the
        event was stored: a webhook is delivered later, from the log, under the
        agreements of the moment of delivery (SPEC 9.4: a change bites at the
        next read), which the test only bounds."""
        since = self.generation_of.get((env["incident"], env["seq"]), self.generation)
        current = dict(AGREEMENTS)
        try:
            for generation in range(self.generation, since - 1, -1):
                set_agreements(self.rules[generation])
                try:
                    check()
                    return
                except Leak:
                    if generation == since:
                        raise
        finally:
            set_agreements(current)

    def seen_throughout(self, incident: IncidentFacts, seq: int, reader: Reader) -> bool:
        """The reader sees the event under every agreement in force since it was
        stored: only such an event must reach a reader that reads later (a feed
        that passed it while an agreement hid it rightly gave nothing, SPEC 9.4)."""
        since = self.generation_of.get((incident.id, seq), self.generation)
        current = dict(AGREEMENTS)
        try:
            for generation in range(since, self.generation + 1):
                set_agreements(self.rules[generation])
                if not sees(incident.events[seq], reader, incident):
                    return False
            return True
        finally:
            set_agreements(current)

    def agreements_changed(self) -> None:
        """The oracle's agreements moved on (``set_agreements`` was called)."""
        self.generation += 1
        self.rules.append(dict(AGREEMENTS))

    def scan(self, seat: Seat, text: str, where: str, phones: frozenset[str] = frozenset()) -> None:
        self.scan_as(seat.reader, seat.own, text, where, phones)

    def scan_as(
        self,
        reader: Reader,
        own: set[str],
        text: str,
        where: str,
        phones: frozenset[str] = frozenset(),
    ) -> None:
        """Every canary in ``text`` must be one ``reader`` may read (or wrote itself);
        a phone number only one of ``phones``, the owners the read path may name."""
        for user, number in self.phones.items():
            if number in text and user not in phones:
                raise Leak(f"{where}: {reader} got the phone of {user}: {text[:400]}")
        for token in CANARY.findall(text):
            if token in own:
                continue
            if token in self.capacity_canaries:
                if not sees_capacity(reader, self.capacity_canaries[token]):
                    raise Leak(f"{where}: {reader} got capacity note {token}: {text[:400]}")
                if where in INCIDENT_PATHS or any(p in where for p in INCIDENT_ROUTES):
                    raise Leak(f"{where}: capacity note {token} on an incident path: {text[:400]}")
                self.stats["capacity canaries seen"] += 1
                continue
            place = self.owner.get(token)
            if place is None:
                raise Leak(f"{where}: {reader} got {token}, which was never stored: {text[:400]}")
            incident = self.incidents[place[0]]
            if not sees(incident.events[place[1]], reader, incident):
                raise Leak(f"{where}: {reader} got {token} of {place}: {text[:400]}")
            self.stats["canaries seen"] += 1

    def check_envelope(self, reader: Reader, env: dict[str, Any], where: str) -> None:
        incident = self.incidents.get(env["incident"])
        if incident is None or env["seq"] not in incident.events:
            raise Leak(f"{where}: {reader.user} got an event the test never stored: {env}")
        ev = incident.events[env["seq"]]
        audience = entitled(ev, reader, incident)
        if audience is Audience.NONE:
            raise Leak(f"{where}: non-participant {reader} got {env}")
        if audience is Audience.PLACEHOLDER:
            if set(env) != PLACEHOLDER_KEYS or env["type"] != "restricted":
                raise Leak(f"{where}: {reader} should get a bare placeholder, got {env}")
            self.stats[f"placeholders ({where})"] += 1
            return
        if env["type"] == "restricted" or "cid" not in env:
            # Withheld where the oracle says it may be read: a lost event for
            # a reader (or, for a webhook, a delivery under older agreements).
            raise Leak(f"{where}: {reader} got a placeholder for a readable {ev}: {env}")
        expected_vis = None if ev.visibility is None else list(ev.visibility)
        actual = (env["type"], env["cid"], env["actor"]["user"], env["visibility"])
        if actual != (ev.type, ev.cid, ev.actor, expected_vis):
            raise Leak(f"{where}: {reader} got {actual}, the oracle expects {ev}")
        label = (env["body"].get("tlp"), tuple(env["body"].get("recipients") or ()))
        if label != (ev.label, ev.recipients):
            raise Leak(f"{where}: {reader} got label {label}, the oracle expects {ev}")
        if audience is Audience.REDACTED:
            # SPEC 9.4: the marker in place of the position, said so, and no salt.
            if (
                env.get("redacted") != ["position"]
                or "salt" in env
                or env["body"]["position"] != REDACTED_MARK
            ):
                raise Leak(f"{where}: {reader} should get the position redacted, got {env}")
            self.stats[f"redacted events ({where})"] += 1
            return
        if "salt" not in env or "redacted" in env:
            raise Leak(f"{where}: {reader} should get the whole event, got {env}")
        self.stats[f"full events ({where})"] += 1

    def record(
        self, incident: IncidentFacts, ack: dict[str, Any], meta: dict[str, Any], canaries: set[str]
    ) -> EventMeta:
        subject = meta.get("subject")
        if subject is not None:  # SPEC 9.4: follow-ups carry their subject's label
            of = incident.events[subject]
            meta = {**meta, "label": of.label, "recipients": of.recipients}
        ev = EventMeta(
            incident=incident.id,
            seq=ack["seq"],
            ts=ack["ts"],
            canaries=frozenset(canaries),
            **meta,
        )
        if ack["duplicate"] or ack["seq"] != incident.head + 1:
            raise Leak(f"ack {ack} does not follow head {incident.head}")
        incident.events[ev.seq] = ev
        self.generation_of[(incident.id, ev.seq)] = self.generation
        for token in canaries:
            self.owner[token] = (incident.id, ev.seq)
        return ev


def spy(seat: Seat) -> None:
    """Record every engine.io message the client receives (events, acks, notices)."""
    sio = seat.client.sio
    original = sio._handle_eio_message

    async def on_message(data: Any) -> None:
        if isinstance(data, str):
            seat.frames.append(data)
        await original(data)

    sio.eio.on("message", on_message)

    async def on_disconnect(reason: str = "") -> None:
        seat.disconnects.append(f"{time.strftime('%H:%M:%S')} {reason}")

    sio.on("disconnect", on_disconnect)


def envelopes(frame: str) -> list[dict[str, Any]]:
    """The envelopes of an ``ev`` packet (``2["ev",[...]]``), else none."""
    if not frame.startswith('2["ev",'):
        return []
    batch: list[dict[str, Any]] = json.loads(frame[1:])[1]
    return batch


async def login(client: LiaisonClient, username: str, password: str = DEMO_PASSWORD) -> None:
    """Log in, waiting for a node that has not re-read the shared directory yet."""
    deadline = time.monotonic() + 20
    while True:
        try:
            await client.login(username, password)
            return
        except CommandFailed:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def rest(seat: Seat, path: str) -> tuple[int, Any]:
    """GET ``path`` as ``seat``: (status, raw body)."""
    client = seat.client
    await client.fresh_token()
    http = await client._session()
    headers = {"Authorization": f"Bearer {client.token}"}
    async with http.get(client.base_url + path, headers=headers) as resp:
        text = await resp.text()
        status = resp.status
    return status, text


async def rest_post(seat: Seat, path: str, body: dict[str, Any]) -> tuple[int, str]:
    """POST ``body`` to ``path`` as ``seat``: (status, raw body)."""
    client = seat.client
    await client.fresh_token()
    http = await client._session()
    headers = {"Authorization": f"Bearer {client.token}"}
    async with http.post(client.base_url + path, json=body, headers=headers) as resp:
        return resp.status, await resp.text()


def blank_numbers(answer: dict[str, Any] | None) -> str:
    return re.sub(r"\d+", "N", json.dumps(answer, sort_keys=True))


def same_shape(answer: dict[str, Any], incident_id: str) -> str:
    """An answer with the incident's id blanked, to compare with a missing incident's."""
    return json.dumps(answer, sort_keys=True).replace(incident_id, "<id>")


def check_summary(
    summary: dict[str, Any], incident: IncidentFacts, reader: Reader, where: str
) -> None:
    expected = {
        "seq": incident.head,
        "updated": updated_for(incident, reader),
        "title": incident.title,
        "orgs": set(incident.joined),
        "liaisons": incident.liaisons,
        "status": incident.status,
    }
    actual = {**{k: summary[k] for k in expected}, "orgs": set(summary["orgs"])}
    if actual != expected:
        raise Leak(f"{where} for {reader}: {actual}, expected {expected}")


def check_view(
    view: dict[str, Any], incident: IncidentFacts, reader: Reader, org_of: dict[str, str]
) -> None:
    """The incident view against the oracle: only what the reader may see, all of it."""
    check_summary(view, incident, reader, "view")
    messages = {m["seq"]: m for m in view["messages"]}
    shown = {s for s in incident.messages if sees(incident.events[s], reader, incident)}
    if set(messages) != shown:
        raise Leak(f"view messages for {reader}: {sorted(messages)}, expected {sorted(shown)}")
    for seq, m in messages.items():
        facts = incident.messages[seq]
        want = (None if facts.retracted else facts.text, facts.visibility, facts.acks)
        got = (
            m["text"],
            None if m["visibility"] is None else tuple(m["visibility"]),
            set(m["acks"]),
        )
        if got != want:
            raise Leak(f"view message {seq} for {reader}: {got}, expected {want}")
    tasks = {t["id"]: t for t in view["tasks"]}
    shown = {t for t in incident.tasks if sees(incident.events[t], reader, incident)}
    if set(tasks) != shown:
        raise Leak(f"view tasks for {reader}: {sorted(tasks)}, expected {sorted(shown)}")
    responders = {r["user"]: r for r in view["responders"]}
    expected = responders_for(incident, reader)
    seen = {
        u: {
            "status": r["status"],
            "status_ts": r["status_ts"],
            "position": r["position"]
            and (
                r["position"]
                if r["position"] == REDACTED_MARK
                else {**r["position"], "accuracy_m": None}
            ),
            "position_ts": r["position_ts"],
        }
        for u, r in responders.items()
    }
    if seen != expected:
        raise Leak(f"view responders for {reader}: {seen}, expected {expected}")
    allowed = visible_online(reader, view["online"], incident, org_of)
    if set(view["online"]) != allowed:
        raise Leak(f"view online for {reader}: {view['online']}, may only see {allowed}")
