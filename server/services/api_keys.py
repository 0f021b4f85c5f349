"""API keys for bots: create, list, revoke, and check them on every request.

A key is ``lk_<id>_<secret>``: ``id`` is 16 hex digits (it names the key in
lists, the audit log and the logs), ``secret`` 32 random bytes in base64url.
The whole key is shown once, when it is created; only sha256(secret) is kept.

Why sha256 and not argon2 (as for passwords): argon2 is slow on purpose, so
that guessing a *human-chosen* password from a stolen hash costs years.
The secret here has 256 random bits; no amount of guessing finds it from its
sha256, fast or not, while argon2's ~30 ms and 19 MiB on every request of
every bot would be a denial of service waiting to happen. The comparison
is constant-time (``hmac.compare_digest``), and an unknown id is compared
against a dummy hash, so neither timing nor work tells a near miss.

Checking needs no I/O: every node keeps all keys in memory (a deployment
has a few hundred at most), kept current by the revocation feed of the
session store, on which the key store announces every create and revoke
(server/storage/api_keys.py). A revoked key is refused on the node that
revoked it at once and on the others when the feed tells them (a few ms on
Redis, ``sessions.POLL_S`` embedded), and its live sockets are closed then.

A key created elsewhere a moment ago (on another node, or by ``liaison key
create`` beside a running server) is read through: before a request or a
connection is checked, an unknown key id costs one store read (``learn``),
so a bot handed a new key is not refused until the feed catches up. Ids
found missing are remembered for ``UNKNOWN_FOR_S``, and at most
``LEARN_READS_PER_S`` such reads run per second, so garbage keys cannot make
a node read its store on every request.

The scope a key carries becomes ``Principal.scope`` (server/domain/model.py):
the domain and the read paths enforce it; nothing there knows about keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from server.auth import AccessClaims
from server.domain.capacity import CAPACITY_PUBLISH
from server.domain.model import Principal, Role, Scope
from server.errors import StorageUnavailable
from server.services.accounts import API_KEY_PREFIX, Accounts
from server.storage.api_keys import ApiKey, ApiKeyStore
from server.storage.audit import AuditEntry
from server.storage.sessions import Revocation

log = logging.getLogger(__name__)

#: The write command types a key may be given (``follow`` and ``unfollow`` are
#: reads, governed by the incident scope), and ``capacity.publish`` (SPEC 27.2).
WRITE_TYPES = frozenset(t for t, cls in v1.COMMANDS.items() if cls.WRITES) | {CAPACITY_PUBLISH}
#: Last use is written at most this often per key and node: the hot path
#: (every request, every command) must not write.
TOUCH_EVERY_MS = 60_000
#: Failed uses audited one by one per node and minute; past that they are
#: counted, and the next record says how many were not recorded on their own
#: (anyone can send garbage keys; the audit log must not be the flood's sink).
FAILURES_PER_MINUTE = 60
#: The longest key we could have issued ("lk_" + 16 + "_" + 43), with room.
MAX_KEY_CHARS = 128
#: Incidents one key may name.
MAX_SCOPE_INCIDENTS = 1000
#: Claims expiry of a key (never: a key lasts until it is revoked).
NEVER = 2**62

#: Seconds an id found missing from the store is not looked up again.
UNKNOWN_FOR_S = 30.0
#: Ids remembered as missing, oldest forgotten first.
MAX_UNKNOWN = 4096
#: Store reads for unknown ids per second and node; past that they are refused as before.
LEARN_READS_PER_S = 20

_DUMMY_HASH = hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


def parse_key(token: str) -> tuple[str, str] | None:
    """(id, secret) of something shaped like a key, else None."""
    if len(token) > MAX_KEY_CHARS or not token.isascii() or not token.startswith(API_KEY_PREFIX):
        return None
    key_id, sep, secret = token[len(API_KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        return None
    return key_id, secret


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """What an admin asks for; checked by ``ApiKeys.create``."""

    username: str
    name: str
    incidents: Any = "all"  # "all" or a list of incident ids
    commands: Any = "all"  # "all" or a list of write command types
    coordinator: bool = False


def _scope_list(value: Any, field: str, allowed: frozenset[str] | None) -> tuple[str, ...] | None:
    if value == "all":
        return None
    if not isinstance(value, list | tuple) or not value or len(value) > MAX_SCOPE_INCIDENTS:
        raise ProtocolError(
            ErrorCode.INVALID, f'{field} must be "all" or a non-empty list', {"field": field}
        )
    items = tuple(dict.fromkeys(value))
    for item in items:
        if not isinstance(item, str) or not 0 < len(item) <= 100:
            raise ProtocolError(ErrorCode.INVALID, f"{field} holds a bad entry", {"field": field})
        if allowed is not None and item not in allowed:
            raise ProtocolError(
                ErrorCode.INVALID, f"{item!r} is not a write command type", {"field": field}
            )
    return items


class ApiKeys:
    """The keys of one node: the admin operations and the in-memory check."""

    def __init__(self, store: ApiKeyStore, accounts: Accounts) -> None:
        self.store, self.accounts, self.directory = store, accounts, accounts.directory
        self._keys: dict[str, ApiKey] = {}
        self._scopes: dict[str, Scope] = {}
        self._touched: dict[str, int] = {}
        self._failures = (0, 0, 0)  # minute, recorded in it, suppressed since last record
        self._tasks: set[asyncio.Task[Any]] = set()
        #: key id -> monotonic time it was found missing (learn's negative cache).
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._reads = (0, 0)  # second, reads in it
        accounts.keys = self
        accounts.guard.keep(self._on_feed)

    # ------------------------------------------------------------- checking

    def authenticate(self, token: str, address: str = "") -> tuple[Principal, AccessClaims]:
        """The scoped principal of a valid key; ``unauthenticated`` otherwise (no I/O)."""
        parsed = parse_key(token)
        key = self._keys.get(parsed[0]) if parsed else None
        presented = _sha256(parsed[1]) if parsed else ""
        matches = hmac.compare_digest(presented, key.secret_hash if key else _DUMMY_HASH)
        if key is None or not matches:
            named = parsed[0][:32] if parsed else ""
            self._failed(named, "unknown key" if key is None else "wrong secret", address)
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "the API key is not valid")
        principal = self._principal(key)
        if principal is None:
            self._failed(key.id, "revoked" if key.revoked_ms else "bot disabled", address)
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "the API key is not valid")
        self._touch(key.id)
        return principal, AccessClaims(key.user_id, NEVER, key.created_ms, "", key=key.id)

    async def learn(self, token: str) -> None:
        """Read a key this node does not know yet from the store (module docstring).

        Never raises: a key that cannot be read is refused by ``authenticate``
        as an unknown one, exactly as without this step.
        """
        parsed = parse_key(token)
        if parsed is None or parsed[0] in self._keys:
            return
        key_id = parsed[0]
        now = time.monotonic()
        missing_since = self._unknown.get(key_id)
        if missing_since is not None and now - missing_since < UNKNOWN_FOR_S:
            return
        second, reads = self._reads
        if second != int(now):
            second, reads = int(now), 0
        if reads >= LEARN_READS_PER_S:
            return
        self._reads = (second, reads + 1)
        try:
            key = await self.store.get(key_id)
        except StorageUnavailable as exc:
            log.warning("API key %s could not be looked up: %s", key_id, exc)
            return
        if key is None:
            self._unknown[key_id] = now
            self._unknown.move_to_end(key_id)
            while len(self._unknown) > MAX_UNKNOWN:
                self._unknown.popitem(last=False)
            return
        self._unknown.pop(key_id, None)
        if key.id not in self._keys:  # the feed may have brought it meanwhile
            self._cache([key])
        if self.directory.user(key.user_id) is None:
            try:  # a bot added just before its key, elsewhere: as the feed does
                await self.directory.catch_up()
            except StorageUnavailable as exc:
                log.warning("directory not checked for API key %s: %s", key.id, exc)

    def still_valid(self, claims: AccessClaims) -> bool:
        """For a live socket, on every command and after every revocation (no I/O)."""
        key = self._keys.get(claims.key)
        if key is None or self._principal(key) is None:
            return False
        self._touch(key.id)
        return True

    def _principal(self, key: ApiKey) -> Principal | None:
        """The key's bot with its scope; None if the key is revoked or the bot cannot act."""
        if key.revoked_ms is not None:
            return None
        base = self.directory.user(key.user_id)  # None when disabled or deleted
        if base is None or base.role is not Role.BOT or base.org_id != key.org_id:
            return None
        return replace(base, scope=self._scopes[key.id])

    def _touch(self, key_id: str) -> None:
        now = _now_ms()
        if now - self._touched.get(key_id, 0) < TOUCH_EVERY_MS:
            return
        self._touched[key_id] = now
        self._spawn(self._write_touch(key_id, now))

    async def _write_touch(self, key_id: str, now: int) -> None:
        try:
            await self.store.touch(key_id, now)
        except StorageUnavailable as exc:  # retried at the next use
            log.warning("recording the last use of API key %s failed: %s", key_id, exc)
            self._touched.pop(key_id, None)

    def _failed(self, key_id: str, reason: str, address: str) -> None:
        """Audit a refused key (never the key itself), within the per-minute budget."""
        minute = _now_ms() // 60_000
        seen, recorded, suppressed = self._failures
        if seen != minute:
            recorded = 0
        if recorded >= FAILURES_PER_MINUTE:
            if suppressed == 0:
                log.warning("more than %d refused API keys this minute", FAILURES_PER_MINUTE)
            self._failures = (minute, recorded, suppressed + 1)
            return
        self._failures = (minute, recorded + 1, 0)
        detail: dict[str, Any] = {"reason": reason}
        if suppressed:
            detail["suppressed"] = suppressed
        entry = AuditEntry("", "apikey.use", key_id, "unauthenticated", address, detail)
        self._spawn(self._record(entry))

    async def _record(self, entry: AuditEntry) -> None:
        try:
            await self.accounts.record(entry)
        except StorageUnavailable:
            return  # Accounts.record logged it with the entry

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------- the feed

    async def _on_feed(self, revocation: Revocation) -> None:
        """Keep the cache current: one key re-read on ``key``, all on ``resync``."""
        if revocation.kind == "resync":
            self._cache(await self.store.all(), replace_all=True)
        elif revocation.kind == "key":
            # Replaced, never dropped first: a command arriving during the
            # read must not find a valid key missing (the feed echoes every
            # create). A key that cannot be re-read is not trusted meanwhile.
            try:
                key = await self.store.get(revocation.family)
            except StorageUnavailable:
                self._keys.pop(revocation.family, None)
                log.warning(
                    "API key %s could not be re-read; refused until it is", revocation.family
                )
                self._spawn(self._retry(revocation))
                return
            if key is None:
                self._keys.pop(revocation.family, None)
                return
            self._cache([key])
            try:
                # A bot added just before its key (by another process or node):
                # its directory row now, not at the next refresh.
                await self.directory.catch_up()
            except StorageUnavailable as exc:
                log.warning("directory not checked after API key %s: %s", key.id, exc)

    async def _retry(self, revocation: Revocation) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self._on_feed(Revocation("resync", ""))
            except StorageUnavailable:
                delay = min(30.0, delay * 2)
                continue
            return

    def _cache(self, found: Sequence[ApiKey], replace_all: bool = False) -> None:
        if replace_all:
            self._keys, self._scopes = {}, {}
        for key in found:
            self._keys[key.id] = key
            self._scopes[key.id] = Scope(
                incidents=None if key.incidents is None else frozenset(key.incidents),
                commands=None if key.commands is None else frozenset(key.commands),
                coordinator=key.coordinator,
            )

    # ---------------------------------------------------------- administration

    async def create(
        self, actor: str, actor_org: str | None, request: KeyRequest, address: str = ""
    ) -> tuple[ApiKey, str]:
        """A new key and its full secret (shown once). ``actor_org`` None: the CLI."""
        asked = {"username": request.username}
        audit = AuditEntry(actor, "apikey.create", "", "ok", address, asked)
        try:
            key, token = self._new_key(actor, actor_org, request)
            await self.store.create(key, key.created_ms)
        except ProtocolError as err:
            await self.accounts.record(replace(audit, outcome=err.code.code))
            raise
        await self.accounts.guard.apply(Revocation("key", key.user_id, key.id, key.created_ms))
        await self.accounts.record(replace(audit, target=key.id, detail=key.to_wire()["scope"]))
        return key, token

    def _new_key(
        self, actor: str, actor_org: str | None, request: KeyRequest
    ) -> tuple[ApiKey, str]:
        user = self.directory.by_username(request.username)
        if user is None or user.deleted:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no user {request.username!r}")
        if actor_org is not None and user.org_id != actor_org:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "administrators manage the keys of their own organisation"
            )
        if user.role is not Role.BOT:
            raise ProtocolError(ErrorCode.INVALID, "API keys are for users with the role bot")
        if not 0 < len(request.name) <= 100:
            raise ProtocolError(ErrorCode.INVALID, "name: 1 to 100 characters", {"field": "name"})
        incidents = _scope_list(request.incidents, "incidents", None)
        commands = _scope_list(request.commands, "commands", WRITE_TYPES)
        if incidents is not None and (commands is None or "incident.create" in commands):
            raise ProtocolError(
                ErrorCode.INVALID,
                "a key scoped to some incidents cannot open new ones: list its commands"
                " without incident.create",
                {"field": "commands"},
            )
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        key = ApiKey(
            id=key_id,
            user_id=user.id,
            org_id=user.org_id,
            name=request.name,
            secret_hash=_sha256(secret),
            incidents=incidents,
            commands=commands,
            coordinator=bool(request.coordinator),
            created_ms=_now_ms(),
            created_by=actor,
        )
        return key, f"{API_KEY_PREFIX}{key_id}_{secret}"

    async def revoke(
        self, actor: str, actor_org: str | None, key_id: str, address: str = ""
    ) -> ApiKey:
        """Refused everywhere from now on; its live sockets close (on every node)."""
        audit = AuditEntry(actor, "apikey.revoke", key_id, "ok", address)
        try:
            await self.get(actor_org, key_id)
            revoked = await self.store.revoke(key_id, _now_ms())
            if revoked is None:  # pragma: no cover - it was there a moment ago
                raise ProtocolError(ErrorCode.NOT_FOUND, "no such API key")
        except ProtocolError as err:
            await self.accounts.record(replace(audit, outcome=err.code.code))
            raise
        assert revoked.revoked_ms is not None
        announced = Revocation("key", revoked.user_id, key_id, revoked.revoked_ms)
        await self.accounts.guard.apply(announced)
        await self.accounts.record(replace(audit, detail={"user": revoked.user_id}))
        return revoked

    async def get(self, actor_org: str | None, key_id: str) -> ApiKey:
        """One key as stored (an other organisation's is "not found")."""
        key = await self.store.get(key_id) if 0 < len(key_id) <= 64 else None
        if key is None or (actor_org is not None and key.org_id != actor_org):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such API key")
        return self._with_local_use(key)

    async def list(self, actor_org: str | None) -> list[ApiKey]:
        keys = await self.store.all()
        return [self._with_local_use(k) for k in keys if actor_org in (None, k.org_id)]

    def _with_local_use(self, key: ApiKey) -> ApiKey:
        """This node's last use may be newer than the stored one (written once a minute)."""
        local = self._touched.get(key.id)
        if local is not None and local > (key.last_used_ms or 0):
            return replace(key, last_used_ms=local)
        return key

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
