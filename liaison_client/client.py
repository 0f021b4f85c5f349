"""LiaisonClient: the reference client implementation of protocol v1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import msgpack
import socketio

from protocol import PROTOCOL_VERSION
from protocol.codec import MsgpackCodec
from protocol.v1 import receipt_id

log = logging.getLogger(__name__)


class CommandFailed(Exception):
    """The server refused a command; ``code`` is the protocol's stable error code."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error
        self.code: str = error.get("code", "internal")
        self.retryable: bool = bool(error.get("retryable"))
        super().__init__(f"{self.code}: {error.get('message')}")


@dataclass(slots=True)
class Position:
    epoch: str | None
    seq: int


class LiaisonClient:
    def __init__(
        self,
        base_url: str,
        *,
        encoding: str = "json",
        transports: list[str] | None = None,
        ack_timeout: float = 10.0,
        retries: int = 5,
        api_key: str | None = None,
        local_addr: str | None = None,
    ) -> None:
        """``api_key``: a bot's key (``lk_...``), used as is on REST and to connect;
        bots cannot ``login`` with a password. ``local_addr``: the address to
        connect from, on a host with several (a server's worker group picks a
        worker by it)."""
        self.base_url = base_url.rstrip("/")
        self.local_addr = local_addr
        self.encoding = encoding
        self.transports = transports or ["websocket"]
        self.ack_timeout = ack_timeout
        self.retries = retries
        self.token: str | None = api_key
        #: Unix seconds when ``token`` expires; refreshed this long before.
        self.expires: float = float("inf") if api_key else 0.0
        self.refresh_token: str | None = None
        self.refresh_margin_s = 60.0
        self._refreshing = asyncio.Lock()
        #: Set when the server said this session ended (revoked, disabled...).
        self.session_ended = asyncio.Event()
        self._ending: asyncio.Task[Any] | None = None
        self.user: dict[str, Any] | None = None
        self.welcome: dict[str, Any] | None = None
        self.positions: dict[str, Position] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.notices: list[dict[str, Any]] = []
        self.resyncs: list[str] = []
        self._welcomed = asyncio.Event()
        #: Set whenever an event is delivered; wait_seq sleeps on it.
        self._progress = asyncio.Event()
        self._codec = MsgpackCodec() if encoding == "msgpack" else None
        self._http: aiohttp.ClientSession | None = None
        self._refollow: asyncio.Task[Any] | None = None
        self.sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=0.2,
            reconnection_delay_max=2.0,
            randomization_factor=0.2,
            http_session=self._new_http,
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("welcome", self._on_welcome)
        self.sio.on("ev", self._on_ev)
        self.sio.on("notice", self._on_notice)
        self.sio.on("feed", self._on_feed)
        #: The cross-incident feed (SPEC section 24): the cursor after the last
        #: entry received (a reconnect resubscribes from it), its kinds (None:
        #: not subscribed), and the entries in order.
        self.feed_cursor: str | None = None
        self.feed_kinds: list[str] | None = None
        self.feed_entries: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    # ------------------------------------------------------------------ REST

    def _new_http(self) -> aiohttp.ClientSession:
        """An HTTP session from ``local_addr`` if one is set (REST and engine.io alike)."""
        if self.local_addr is None:
            return aiohttp.ClientSession()
        connector = aiohttp.TCPConnector(local_addr=(self.local_addr, 0))
        return aiohttp.ClientSession(connector=connector)

    async def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = self._new_http()
        return self._http

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        if not path.startswith("/api/v1/auth/"):
            await self.fresh_token()
        return await self._request(method, path, body)

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        http = await self._session()
        async with http.request(method, self.base_url + path, json=body, headers=headers) as resp:
            data = await resp.json()
            if resp.status >= 400:
                raise CommandFailed(data.get("error", {"code": "internal"}))
            return data

    async def login(self, username: str, password: str) -> dict[str, Any]:
        data = await self.request(
            "POST", "/api/v1/auth/login", {"username": username, "password": password}
        )
        self._granted(data)
        return dict(data)

    def _granted(self, data: dict[str, Any]) -> None:
        self.token, self.user = data["token"], data["user"]
        self.expires = float(data["expires"])
        self.refresh_token = data.get("refresh_token")

    async def refresh(self) -> dict[str, Any]:
        """Trade the refresh token for a new pair (the old one is dead from now on).

        Refreshes are serialised: presenting a refresh token twice counts as
        theft and ends the session (SPEC §4).
        """
        async with self._refreshing:
            data = await self._request(
                "POST", "/api/v1/auth/refresh", {"refresh_token": self.refresh_token}
            )
            self._granted(data)
            return dict(data)

    async def fresh_token(self) -> str | None:
        """The access token, refreshed first if it expires within ``refresh_margin_s``."""
        if self.refresh_token and self.expires - time.time() < self.refresh_margin_s:
            expires = self.expires
            async with self._refreshing:
                stale = self.expires == expires  # nobody refreshed while we waited
            if stale:
                await self.refresh()
        return self.token

    async def logout(self) -> None:
        await self._request("POST", "/api/v1/auth/logout")
        self.refresh_token = None

    async def incidents(self, query: str = "") -> list[dict[str, Any]]:
        """Every incident of the list (all pages), most recently updated first.

        ``query``: extra query string, e.g. ``"status=open&limit=50"``.
        """
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = "&".join(p for p in (query, f"cursor={cursor}" if cursor else "") if p)
            data = await self.request("GET", "/api/v1/incidents" + (f"?{params}" if params else ""))
            out += data["incidents"]
            cursor = data.get("next")
            if not cursor:
                return out

    async def incident(self, incident: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/api/v1/incidents/{incident}"))

    async def by_ref(self, external_ref: str) -> list[dict[str, Any]]:
        """The incidents carrying this external reference (a CAD number), exactly."""
        return await self.incidents("ref=" + quote(external_ref, safe=""))

    async def search(
        self, q: str, incident: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Every hit of a text search (all pages): ``{incident, seq, snippet, event}``."""
        hits: list[dict[str, Any]] = []
        cursor: str | None = None
        base = f"/api/v1/search?q={quote(q, safe='')}&limit={limit}"
        if incident is not None:
            base += "&incident=" + quote(incident, safe="")
        while True:
            page = await self.request("GET", base + (f"&cursor={cursor}" if cursor else ""))
            hits += page["hits"]
            cursor = page["next"]
            if not cursor:
                return hits

    async def timeline(
        self,
        incident: str,
        after_seq: int = 0,
        *,
        types: list[str] | None = None,
        since: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every event of the incident after ``after_seq``, following the pages.

        ``types`` (event types or ``family.*``) and ``since`` (server ms) filter
        it: the events you may see that match, and no placeholders (SPEC 18.4).
        """
        events: list[dict[str, Any]] = []
        cursor: int | None = after_seq
        extra = ("&types=" + quote(",".join(types), safe=",*")) if types else ""
        extra += f"&since={since}" if since is not None else ""
        while cursor is not None:
            page = await self.request(
                "GET",
                f"/api/v1/incidents/{incident}/timeline?after_seq={cursor}&limit=1000{extra}",
            )
            events.extend(page["events"])
            cursor = page["next_after_seq"]
        return events

    async def view_at(
        self, incident: str, *, seq: int | None = None, at: int | str | None = None
    ) -> dict[str, Any]:
        """The incident as it stood at ``seq`` or at the time ``at`` (ms or ISO 8601):
        the state the replay shows there (SPEC 18, ``view``)."""
        query = f"at_seq={seq}" if seq is not None else f"at={at}"
        return dict(await self.request("GET", f"/api/v1/incidents/{incident}/view?{query}"))

    async def kpis(
        self, start: int | str, end: int | str, *, include_exercises: bool = False
    ) -> dict[str, Any]:
        """KPIs of joint operations over incidents created in ``[start, end)`` (SPEC 18.2).

        Exercise and test incidents are left out (counted in ``exercises_excluded``);
        ``include_exercises`` adds their own figures under ``exercises`` (SPEC 28).
        """
        query = f"from={start}&to={end}" + ("&include_exercises=true" if include_exercises else "")
        return dict(await self.request("GET", f"/api/v1/kpis?{query}"))

    async def kpis_csv(self, start: int | str, end: int | str) -> str:
        """The same KPIs as CSV rows ``kpi,group,metric,value``."""
        await self.fresh_token()
        http = await self._session()
        url = f"{self.base_url}/api/v1/kpis?from={start}&to={end}&format=csv"
        headers = {"Authorization": f"Bearer {self.token}"}
        async with http.get(url, headers=headers) as resp:
            if resp.status >= 400:
                raise CommandFailed((await resp.json()).get("error", {"code": "internal"}))
            return await resp.text()

    async def open_incident(
        self, title: str, category: str, *, mode: str = "actual", **fields: Any
    ) -> str:
        """Open an incident; ``mode`` ``exercise`` or ``test`` for a drill (SPEC 28,
        fixed for the incident's life). Returns its id."""
        cmd = {"type": "incident.create", "title": title, "category": category, **fields}
        if mode != "actual":
            cmd["mode"] = mode
        ack = await self.send(cmd)
        incident: str = ack["incident"]
        return incident

    # ------------------------------------------------------------------ live

    async def connect(self, timeout: float = 10.0) -> dict[str, Any]:
        async def auth() -> dict[str, Any]:
            # Called on every (re)connect, so a reconnect uses a fresh token.
            token = self.token
            try:
                token = await self.fresh_token()
            except (CommandFailed, aiohttp.ClientError) as exc:
                # The server will refuse the old token with a typed error.
                log.warning("could not refresh before connecting: %s", exc)
            return {"token": token, "versions": [PROTOCOL_VERSION], "encoding": self.encoding}

        self._welcomed.clear()
        await self.sio.connect(
            self.base_url, auth=auth, transports=self.transports, wait_timeout=timeout
        )
        await asyncio.wait_for(self._welcomed.wait(), timeout)
        assert self.welcome is not None
        return self.welcome

    async def close(self) -> None:
        if self._refollow is not None:
            self._refollow.cancel()
        if self._ending is not None:
            await self._ending
        # shutdown() also stops a reconnection in progress; the HTTP session of
        # an aborted reconnection attempt is closed explicitly. One more
        # attempt at most: a reconnection task that had not started when
        # shutdown() set its abort event clears it as it starts.
        self.sio.reconnection_attempts = 1
        try:
            try:
                await self.sio.shutdown()
            except AttributeError:
                # python-socketio 5.18: a reconnection task created but not
                # yet started has no abort event; after one loop turn it has.
                await asyncio.sleep(0)
                await self.sio.shutdown()
        finally:
            http = getattr(self.sio.eio, "http", None)
            if http is not None and not http.closed:
                await http.close()
            if self._http is not None:
                await self._http.close()
                self._http = None

    async def _on_connect(self) -> None:
        # After a reconnect, resume every followed incident from our position.
        if self.positions or self.feed_kinds is not None:
            self._refollow = asyncio.create_task(self._follow_all())

    async def _follow_all(self) -> None:
        with contextlib.suppress(Exception):
            await self._welcomed.wait()
            if self.positions:
                await self.follow_many(list(self.positions))
            if self.feed_kinds is not None:
                await self.subscribe_feed(self.feed_cursor, self.feed_kinds)

    async def subscribe_feed(
        self, after: str | None = None, kinds: list[str] | None = None
    ) -> dict[str, Any]:
        """Read the feed from ``after`` (None: from now), then live; returns the ack."""
        command: dict[str, Any] = {"type": "feed.subscribe"}
        if after:
            command["after"] = after
        if kinds:
            command["kinds"] = kinds
        self.feed_cursor = after
        ack = await self._call(command)
        if not ack.get("ok"):
            raise CommandFailed(ack["error"])
        self.feed_kinds = kinds or []
        if self.feed_cursor == after:  # no frame came before the ack
            self.feed_cursor = ack["cursor"]
        return ack

    async def _on_feed(self, frame: Any) -> None:
        data = msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes) else frame
        for entry in data["entries"]:
            self.feed_entries.put_nowait(entry)
        self.feed_cursor = data["cursor"]

    async def next_feed_entry(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next feed entry received, in feed order (TimeoutError if none comes)."""
        return await asyncio.wait_for(self.feed_entries.get(), timeout)

    async def feed(
        self, after: str | None = None, *, kinds: str = "", wait: int = 0, limit: int = 100
    ) -> dict[str, Any]:
        """One page of ``GET /api/v1/feed`` (``{entries, cursor, more}``)."""
        query = f"?limit={limit}&wait={wait}"
        if after:
            query += f"&after={after}"
        if kinds:
            query += f"&kinds={kinds}"
        page: dict[str, Any] = await self.request("GET", "/api/v1/feed" + query)
        return page

    async def _on_welcome(self, data: dict[str, Any]) -> None:
        self.welcome = data
        self.user = self.user or data.get("user")
        self._welcomed.set()

    async def _on_notice(self, data: dict[str, Any]) -> None:
        self.notices.append(data)
        if data.get("code") == "unauthenticated":
            # The session ended (SPEC 15): a reconnect would only be refused,
            # over and over. Stop; the caller logs in again.
            self.session_ended.set()
            self._ending = asyncio.create_task(self.sio.shutdown())

    async def _on_ev(self, batch: Any) -> None:
        envelopes = msgpack.unpackb(batch, raw=False) if isinstance(batch, bytes) else batch
        gaps: set[str] = set()
        for env in envelopes:
            pos = self.positions.get(env["incident"])
            if pos is None or env["incident"] in gaps:
                continue
            if env["seq"] <= pos.seq:
                continue  # a duplicate: already delivered
            if env["seq"] != pos.seq + 1:
                gaps.add(env["incident"])
                continue
            pos.seq, pos.epoch = env["seq"], env["epoch"]
            self.events.put_nowait(env)
            self._progress.set()
        if gaps:
            self._refollow = asyncio.create_task(self.follow_many(sorted(gaps)))

    async def follow(self, incident: str, after_seq: int | None = None) -> dict[str, Any]:
        if after_seq is not None:
            self.positions[incident] = Position(None, after_seq)
        results = await self.follow_many([incident])
        return results[0]

    async def follow_many(self, incidents: list[str]) -> list[dict[str, Any]]:
        targets = []
        for incident in incidents:
            pos = self.positions.setdefault(incident, Position(None, 0))
            targets.append({"incident": incident, "after_seq": pos.seq, "epoch": pos.epoch})
        ack = await self.send({"type": "follow", "incidents": targets})
        results: list[dict[str, Any]] = ack["incidents"]
        for result in results:
            if result["status"] in ("resync_required", "out_of_range"):
                # Our position belongs to a log that no longer exists: start over.
                self.resyncs.append(result["incident"])
                self.positions[result["incident"]] = Position(result["epoch"], 0)
                await self.follow_many([result["incident"]])
            elif result["status"] != "ok" and not result.get("retryable"):
                self.positions.pop(result["incident"], None)
        return results

    async def unfollow(self, incident: str) -> None:
        self.positions.pop(incident, None)
        await self.send({"type": "unfollow", "incidents": [incident]})

    async def send(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send a command and wait for its ack; retries keep the same client id."""
        if command["type"] not in ("follow", "unfollow"):
            command.setdefault("id", uuid.uuid4().hex)
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
            try:
                ack = await self._call(command)
            except (TimeoutError, socketio.exceptions.SocketIOError) as exc:
                last_error = exc
                continue
            if ack.get("ok"):
                return ack
            failure = CommandFailed(ack["error"])
            if not failure.retryable:
                raise failure
            last_error = failure
        assert last_error is not None
        raise last_error

    async def _call(self, command: dict[str, Any]) -> dict[str, Any]:
        if not self.sio.connected:
            raise TimeoutError("not connected")
        payload: Any = self._codec.encode(command) if self._codec else command
        ack = await self.sio.call("cmd", payload, timeout=self.ack_timeout)
        if isinstance(ack, bytes):
            ack = msgpack.unpackb(ack, raw=False)
        result: dict[str, Any] = ack
        return result

    async def post(self, incident: str, text: str, **fields: Any) -> dict[str, Any]:
        """Post a message. ``written_at`` (ms, your clock) says when it was written,
        if that was earlier (queued offline, SPEC 8.0)."""
        return await self.send(
            {"type": "message.post", "incident": incident, "text": text, **fields}
        )

    async def submit_review(
        self,
        incident: str,
        went_well: str,
        went_badly: str,
        rating: int,
        actions: list[dict[str, Any]] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Your organisation's post-incident review (SPEC 8.12); ``actions``:
        ``[{id, text, owner, due}]`` with ``due`` in Unix seconds."""
        return await self.send(
            {
                "type": "review.submit",
                "incident": incident,
                "went_well": went_well,
                "went_badly": went_badly,
                "rating": rating,
                "actions": actions or [],
                **fields,
            }
        )

    async def action_done(self, incident: str, action_id: str, **fields: Any) -> dict[str, Any]:
        return await self.send(
            {"type": "review.action_done", "incident": incident, "action_id": action_id, **fields}
        )

    async def ack(self, incident: str, message: int) -> dict[str, Any]:
        """Acknowledge an urgent message (the third receipt state, by a person)."""
        return await self.send({"type": "message.ack", "incident": incident, "message": message})

    async def receipt(
        self, incident: str, state: str, *, message: int | None = None, task: int | None = None
    ) -> dict[str, Any]:
        """Report an urgent message or a task ``delivered`` (to this device) or
        ``seen``. Every device of a user sends the same id (SPEC "Receipts"),
        so a second device's receipt is answered as a duplicate."""
        kind, ref = ("message", message) if message is not None else ("task", task)
        assert ref is not None, "a receipt names a message or a task"
        return await self.send(
            {
                "type": "receipt.mark",
                "id": receipt_id(incident, kind, ref, state),
                "incident": incident,
                kind: ref,
                "state": state,
            }
        )

    async def checkin(
        self,
        incident: str,
        action: str,
        *,
        interval_s: int | None = None,
        position: dict[str, float] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A lone-worker check-in: ``start`` (with ``interval_s``), ``ok``,
        ``end``, ``duress`` or ``resolve`` (with ``user``) (SPEC "Check-ins")."""
        command: dict[str, Any] = {"type": f"checkin.{action}", "incident": incident, **fields}
        if interval_s is not None:
            command["interval_s"] = interval_s
        if position is not None:
            command["position"] = position
        return await self.send(command)

    # ------------------------------------------------- expertise and capacity (SPEC 27)

    async def suggestions(
        self, incident: str, *, task: int | None = None, needs: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """People and organisations ranked for a task by the incident's needs
        (or ``needs``), availability and distance; best first."""
        params = [f"task={task}"] if task is not None else []
        if needs is not None:
            params.append("needs=" + quote(",".join(needs), safe=",:"))
        path = f"/api/v1/incidents/{incident}/suggestions" + (
            "?" + "&".join(params) if params else ""
        )
        return list((await self.request("GET", path))["suggestions"])

    async def capacity_board(self) -> dict[str, Any]:
        """Every organisation's current capacity you may see, and the position to follow from."""
        return dict(await self.request("GET", "/api/v1/capacity"))

    async def capacity_changes(self, after: int, wait_s: int = 0) -> dict[str, Any]:
        """Capacity changes after position ``after`` (waiting up to ``wait_s`` for one)."""
        return dict(
            await self.request("GET", f"/api/v1/capacity/changes?after={after}&wait_s={wait_s}")
        )

    async def publish_capacity(
        self, org: str, items: dict[str, Any], client_id: str | None = None
    ) -> dict[str, Any]:
        """Publish a change of ``org``'s capacity (None clears an item); idempotent."""
        body = {"id": client_id or uuid.uuid4().hex, "items": items}
        return dict(await self.request("POST", f"/api/v1/orgs/{org}/capacity", body))

    async def capacity_history(self, org: str, after_seq: int = 0) -> dict[str, Any]:
        return dict(await self.request("GET", f"/api/v1/orgs/{org}/capacity?after_seq={after_seq}"))

    async def request_capacity(
        self, incident: str, org: str, items: dict[str, Any], **fields: Any
    ) -> dict[str, Any]:
        """Ask a participating organisation for capacity from an incident (``capacity.request``)."""
        return await self.send(
            {"type": "capacity.request", "incident": incident, "org": org, "items": items, **fields}
        )

    async def answer_capacity(
        self, incident: str, request: int, accept: bool, **fields: Any
    ) -> dict[str, Any]:
        kind = "capacity.accept" if accept else "capacity.decline"
        return await self.send({"type": kind, "incident": incident, "request": request, **fields})

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next delivered event, in seq order.

        Raises ``TimeoutError`` if none arrives within ``timeout`` seconds. An
        incident can be quiet for minutes: a listener loops and carries on
        (README.md, "Live, from Python"); the connection stays up meanwhile.
        """
        return await asyncio.wait_for(self.events.get(), timeout)

    async def wait_seq(self, incident: str, seq: int, timeout: float = 10.0) -> None:
        """Wait until events up to ``seq`` of ``incident`` have been received."""
        async with asyncio.timeout(timeout):
            while self.positions.get(incident, Position(None, 0)).seq < seq:
                self._progress.clear()
                await self._progress.wait()
