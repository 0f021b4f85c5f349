"""Accounts and sessions: login, refresh, logout, the account lifecycle, audit.

Shared by the REST API and the CLI. Every action here is one audit record.

Sessions (see server/storage/sessions.py for the store):

* login opens a session family and answers a short-lived access token
  (``LIAISON_TOKEN_TTL_S``, 15 min) and an opaque refresh token
  ``r1.<family>.<secret>``; only sha256(secret) is stored.
* refresh rotates the refresh token; presenting a rotated one again ends the
  whole family (a stolen copy and the victim's both stop working). A family
  not refreshed for ``LIAISON_IDLE_TIMEOUT_S`` or older than
  ``LIAISON_REFRESH_TTL_S`` ends too.
* logout ends the family; disable, delete, a password change or reset and
  "revoke sessions" end every family of the user and void every access token
  issued before. Each is published to every node, whose ``SessionGuard``
  refuses the tokens from memory (no round trip per request) and closes the
  user's live sockets.
* With the store or its feed unreachable, login and refresh are refused with
  ``unavailable`` (fail closed); tokens already issued keep working on a node
  until the feed tells it otherwise, at most one access-token lifetime.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from protocol.errors import ErrorCode, ProtocolError
from server.auth import AccessClaims, TokenSigner, check_password, hash_password
from server.domain.model import Principal, Role
from server.errors import StorageUnavailable
from server.storage.audit import AuditEntry, AuditLog
from server.storage.directory import DELETED, Directory, User
from server.storage.sessions import Revocation, SessionStore

log = logging.getLogger(__name__)

#: Called after a revocation was applied: close the live sockets of ``user``
#: (every user's when None) whose session is no longer valid.
Closer = Callable[[str | None], Awaitable[None]]
#: Keeps state of its own from the feed (API keys); runs before the closers,
#: and once with ``resync`` when the guard starts.
Keeper = Callable[[Revocation], Awaitable[None]]

#: How an API key starts (server/services/api_keys.py); access tokens start "v1.".
API_KEY_PREFIX = "lk_"


class KeyChecker(Protocol):
    """Checks API keys for ``Accounts`` (implemented by services/api_keys.py)."""

    def authenticate(self, token: str, address: str) -> tuple[Principal, AccessClaims]: ...

    async def learn(self, token: str) -> None:
        """Read a key created elsewhere a moment ago before it is checked (never raises)."""
        ...

    def still_valid(self, claims: AccessClaims) -> bool: ...

    async def close(self) -> None: ...


def _now_ms() -> int:
    return int(time.time() * 1000)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SessionGuard:
    """This node's copy of the revocations, kept current by the store's feed."""

    def __init__(self, store: SessionStore, directory: Directory, access_ttl_s: int) -> None:
        self.store, self.directory, self.access_ttl_s = store, directory, access_ttl_s
        self.valid_after: dict[str, int] = {}
        self.ended: dict[str, int] = {}
        self._closers: list[Closer] = []
        self._keepers: list[Keeper] = []

    def on_revoked(self, closer: Closer) -> None:
        self._closers.append(closer)

    def keep(self, keeper: Keeper) -> None:
        self._keepers.append(keeper)

    async def start(self) -> None:
        await self._reload()
        for keeper in self._keepers:
            await keeper(Revocation("resync", ""))
        self.store.listen(self._apply)

    async def _reload(self) -> None:
        state = await self.store.state(_now_ms() - self.access_ttl_s * 1000 - 60_000)
        self.valid_after, self.ended = state.valid_after, state.ended

    def allows(self, claims: AccessClaims) -> bool:
        """Whether a token's session is still valid (no I/O: on every request)."""
        return claims.iat_ms >= self.valid_after.get(claims.sub, 0) and claims.sid not in self.ended

    async def apply(self, revocation: Revocation) -> None:
        """A revocation this node made: in force here at once, before the feed echoes it."""
        await self._apply(revocation)

    async def _apply(self, revocation: Revocation) -> None:
        user: str | None = revocation.user
        match revocation.kind:
            case "revoke":
                before = self.valid_after.get(revocation.user, 0)
                self.valid_after[revocation.user] = max(before, revocation.ts_ms)
            case "end":
                self.ended[revocation.family] = revocation.ts_ms
            case "resync":
                await self._reload()
                user = None
        self._forget_old_families()
        for keeper in self._keepers:
            await keeper(revocation)
        if revocation.kind not in ("end", "key"):
            await self.directory.reload()  # disabled, deleted, new password, re-enabled
        for closer in self._closers:
            await closer(user)

    def _forget_old_families(self) -> None:
        """Ended families whose access tokens have all expired need no entry."""
        horizon = _now_ms() - self.access_ttl_s * 1000 - 60_000
        if len(self.ended) > 1000:
            self.ended = {f: ts for f, ts in self.ended.items() if ts >= horizon}


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    refresh_ttl_s: int
    idle_timeout_s: int


class Accounts:
    def __init__(
        self,
        *,
        directory: Directory,
        store: SessionStore,
        audit: AuditLog,
        signer: TokenSigner,
        guard: SessionGuard,
        policy: SessionPolicy,
    ) -> None:
        self.directory, self.store, self.audit = directory, store, audit
        self.signer, self.guard, self.policy = signer, guard, policy
        #: Set by services/api_keys.py when API keys are served.
        self.keys: KeyChecker | None = None

    # ------------------------------------------------------------ checking

    def authenticate(self, token: object, address: str = "") -> tuple[Principal, AccessClaims]:
        """The principal of a valid, unrevoked access token or API key;
        ``unauthenticated`` otherwise. ``address`` is for the audit of a failed key."""
        if isinstance(token, str) and token.startswith(API_KEY_PREFIX):
            if self.keys is None:
                raise ProtocolError(ErrorCode.UNAUTHENTICATED, "API keys are not served here")
            return self.keys.authenticate(token, address)
        claims = self.signer.decode(token)
        principal = self.directory.user(claims.sub)
        if principal is None or not self.guard.allows(claims):
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "the session has ended")
        return principal, claims

    async def prepare(self, token: object) -> None:
        """Before ``authenticate`` where a caller may await: an API key created on
        another node (or by the CLI) a moment ago is read, not refused."""
        if isinstance(token, str) and token.startswith(API_KEY_PREFIX) and self.keys is not None:
            await self.keys.learn(token)

    def still_valid(self, claims: AccessClaims) -> bool:
        """For a live socket: on every command and after every revocation (no I/O)."""
        if claims.key:
            return self.keys is not None and self.keys.still_valid(claims)
        user = self.directory.users.get(claims.sub)
        return user is not None and not user.disabled and self.guard.allows(claims)

    async def record(self, entry: AuditEntry) -> None:
        """Append to the audit log; an audit failure is logged and raised."""
        try:
            await self.audit.append(entry, _now_ms())
        except StorageUnavailable:
            log.error("audit record not stored: %s", entry)
            raise

    # ------------------------------------------------------------ sessions

    def _fail_closed(self) -> None:
        if not self.store.feed_up:
            raise ProtocolError(
                ErrorCode.UNAVAILABLE, "sessions cannot be checked right now; retry shortly"
            )

    def _grant(self, user: User, family: str, secret: str, now: float) -> dict[str, Any]:
        token, exp = self.signer.issue(user.id, now, sid=family)
        return {
            "token": token,
            "expires": exp,
            "refresh_token": f"r1.{family}.{secret}",
            "idle_timeout_s": self.policy.idle_timeout_s,
            "user": user.to_wire(),
        }

    async def open_session(self, user: User, address: str) -> dict[str, Any]:
        """After a successful password check: a new session family.

        Not for bots: they authenticate with an API key (services/api_keys.py),
        which is scoped, while a password session would let a bot do anything
        its role may.
        """
        if user.role is Role.BOT:
            entry = AuditEntry(user.id, "auth.login", user.id, "forbidden", address)
            await self.record(entry)
            raise ProtocolError(ErrorCode.FORBIDDEN, "bots authenticate with an API key")
        self._fail_closed()
        now = time.time()
        family, secret = secrets.token_urlsafe(12), secrets.token_urlsafe(32)
        await self.store.start_family(
            family, user.id, _sha256(secret), int(now * 1000), self.policy.refresh_ttl_s * 1000
        )
        entry = AuditEntry(user.id, "auth.login", user.id, "ok", address, {"sid": family})
        await self.record(entry)
        return self._grant(user, family, secret, now)

    async def login_failed(
        self, username: str, address: str, outcome: str = ErrorCode.UNAUTHENTICATED.code
    ) -> None:
        known = self.directory.by_username(username)
        await self.record(
            AuditEntry(
                known.id if known else "",
                "auth.login",
                known.id if known else "",
                outcome,
                address,
                {"username": username[:64]},
            )
        )

    async def refresh(self, refresh_token: str, address: str) -> dict[str, Any]:
        self._fail_closed()
        parts = refresh_token.split(".") if refresh_token.isascii() else []
        if len(parts) != 3 or parts[0] != "r1":
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "not a refresh token")
        _, family, secret = parts
        new_secret, now = secrets.token_urlsafe(32), time.time()
        rotation = await self.store.rotate(
            family,
            _sha256(secret),
            _sha256(new_secret),
            int(now * 1000),
            self.policy.idle_timeout_s * 1000,
            self.policy.refresh_ttl_s * 1000,
        )
        user = self.directory.users.get(rotation.user)
        if rotation.status != "ok" or user is None or user.disabled:
            outcome = "ok" if rotation.status == "ok" else rotation.status
            await self.record(
                AuditEntry(rotation.user, "auth.refresh", family, outcome, address, {"sid": family})
            )
            if rotation.status in ("reused", "expired"):
                ended = Revocation("end", rotation.user, family, int(now * 1000))
                await self.guard.apply(ended)
            if rotation.status == "reused":
                log.warning("refresh token reuse: session %s of %s ended", family, rotation.user)
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "the session has ended")
        return self._grant(user, family, new_secret, now)

    async def _revoke_user(self, user_id: str) -> None:
        now = _now_ms()
        await self.store.revoke_user(user_id, now)
        await self.guard.apply(Revocation("revoke", user_id, "", now))

    async def logout(self, who: Principal, claims: AccessClaims, address: str) -> None:
        if claims.key:
            raise ProtocolError(ErrorCode.INVALID, "an API key is revoked, not logged out")
        now = _now_ms()
        await self.store.end_family(claims.sid, now)
        await self.guard.apply(Revocation("end", who.user_id, claims.sid, now))
        await self.record(AuditEntry(who.user_id, "auth.logout", claims.sid, "ok", address))

    async def change_password(
        self, who: Principal, old: str, new: str, address: str
    ) -> dict[str, Any]:
        """Own password: every session ends (this one too); a new one is answered."""
        if who.role is Role.BOT:
            raise ProtocolError(ErrorCode.FORBIDDEN, "bots authenticate with an API key")
        user = self._user(who.user_id)
        ok = await asyncio.get_running_loop().run_in_executor(
            None, check_password, old, user.password_hash
        )
        if not ok:
            await self.record(
                AuditEntry(who.user_id, "user.password", who.user_id, "forbidden", address)
            )
            raise ProtocolError(ErrorCode.FORBIDDEN, "the current password is wrong")
        updated = await self._set_password(user, new)
        await self._revoke_user(user.id)
        await self.record(AuditEntry(who.user_id, "user.password", who.user_id, "ok", address))
        return await self.open_session(updated, address)

    # ------------------------------------------------------------ lifecycle

    def _user(self, user_id: str) -> User:
        user = self.directory.users.get(user_id)
        if user is None or user.deleted:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no user {user_id!r}")
        return user

    async def _set_password(self, user: User, password: str) -> User:
        if len(password) < 8:
            raise ProtocolError(ErrorCode.INVALID, "passwords need at least 8 characters")
        hashed = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
        return await self.directory.update_user(replace(user, password_hash=hashed))

    async def _audited(
        self, actor: str, action: str, target: str, address: str, step: Callable[[], Awaitable[Any]]
    ) -> None:
        try:
            await step()
        except ProtocolError as err:
            await self.record(AuditEntry(actor, action, target, err.code.code, address))
            raise
        await self.record(AuditEntry(actor, action, target, "ok", address))

    async def disable(self, actor: str, user_id: str, address: str = "") -> None:
        async def step() -> None:
            user = self._user(user_id)
            await self.directory.update_user(replace(user, disabled=True))
            await self._revoke_user(user_id)

        await self._audited(actor, "user.disable", user_id, address, step)

    async def enable(self, actor: str, user_id: str, address: str = "") -> None:
        async def step() -> None:
            user = self._user(user_id)
            await self.directory.update_user(replace(user, disabled=False))
            await self.store.announce(user_id, _now_ms())

        await self._audited(actor, "user.enable", user_id, address, step)

    async def reset_password(
        self, actor: str, user_id: str, password: str, address: str = ""
    ) -> None:
        async def step() -> None:
            await self._set_password(self._user(user_id), password)
            await self._revoke_user(user_id)

        await self._audited(actor, "user.reset_password", user_id, address, step)

    async def revoke(self, actor: str, user_id: str, address: str = "") -> None:
        async def step() -> None:
            self._user(user_id)
            await self._revoke_user(user_id)

        await self._audited(actor, "user.revoke_sessions", user_id, address, step)

    async def delete(self, actor: str, user_id: str, address: str = "") -> None:
        """A tombstone: the row stays (ids in the logs still name someone), unusable."""

        async def step() -> None:
            user = self._user(user_id)
            if user_id == actor:
                raise ProtocolError(ErrorCode.CONFLICT, "you cannot delete your own account")
            await self.directory.update_user(replace(user, password_hash=DELETED, disabled=True))
            await self._revoke_user(user_id)

        await self._audited(actor, "user.delete", user_id, address, step)


def cli_actor() -> str:
    """Who the audit log names for a CLI action: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def is_admin(who: Principal) -> bool:
    return who.role is Role.ADMIN
