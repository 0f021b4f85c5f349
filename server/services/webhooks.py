"""Outbound webhooks: subscriptions an organisation's admin manages, and their audit.

``Webhooks`` is what the REST API (server/transport/rest_webhooks.py) and the
CLI (``liaison webhook``) call: create, list, delete, rotate a secret, replay
from a seq, read the delivery log. Every change is an audit record. Delivery
itself is ``WebhookDispatcher`` (server/services/webhook_delivery.py), which
reads the same store; nothing here talks to a receiver.

A subscription is its organisation's: an admin sees and changes only those
of their own organisation (``org=None`` is the CLI, which sees all). Its
secret is shown once, when it is created or rotated.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from protocol.webhooks import new_secret
from server.settings import Settings
from server.storage.audit import AuditEntry
from server.storage.webhooks import (
    DeliveryRecord,
    DeliveryState,
    SigningSecret,
    Subscription,
    WebhookStore,
)

Record = Callable[[AuditEntry], Awaitable[None]]

#: Event types a subscription may filter on: every stored type, and the
#: placeholder a reader gets for an event it may not see.
FILTER_TYPES = frozenset((*v1.EVENT_TYPES, v1.RESTRICTED_TYPE))
MAX_URL_CHARS = 2048
MAX_FILTER_ITEMS = 200
#: Longest rotation window an admin may ask for (a week).
MAX_ROTATION_S = 7 * 86400


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """How delivery behaves (LIAISON_WEBHOOK_* settings, README "Settings")."""

    #: Seconds between looks at the log for new events of a subscription.
    poll_s: float = 1.0
    #: Seconds a receiver has to answer one delivery.
    timeout_s: float = 10.0
    #: Back-off after a failed attempt: base, doubling, capped.
    retry_base_s: float = 1.0
    retry_cap_s: float = 300.0
    #: A subscription failing without a success for this long is disabled.
    disable_after_s: float = 86400.0
    #: Seconds a node's delivery lease lasts unless renewed (renewed each poll).
    lease_s: float = 15.0
    #: Default rotation window: the old secret stays valid this long.
    rotation_s: float = 86400.0
    #: Lines kept in each subscription's delivery log.
    keep: int = 500

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig:
        return cls(
            poll_s=settings.webhook_poll_s,
            timeout_s=settings.webhook_timeout_s,
            retry_base_s=settings.webhook_retry_base_s,
            retry_cap_s=settings.webhook_retry_cap_s,
            disable_after_s=settings.webhook_disable_after_s,
            lease_s=max(settings.webhook_lease_s, 3 * settings.webhook_poll_s),
            rotation_s=settings.webhook_rotation_s,
        )

    def backoff_s(self, failures: int) -> float:
        """Delay after the ``failures``-th failure in a row: base·2^(n-1), at most the cap."""
        return float(min(self.retry_cap_s, self.retry_base_s * 2 ** min(failures - 1, 40)))


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    url: str
    incidents: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None
    description: str = ""
    modes: tuple[str, ...] = (v1.LIVE_MODE,)


def _invalid(field: str, message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID, message, {"field": field})


def _filter(
    value: Any, field: str, allowed: frozenset[str] | None = None
) -> tuple[str, ...] | None:
    if value is None or value == "all":
        return None
    if not isinstance(value, list) or len(value) > MAX_FILTER_ITEMS:
        raise _invalid(field, f"{field} must be 'all' or a list of at most {MAX_FILTER_ITEMS}")
    for item in value:
        if not isinstance(item, str) or not 0 < len(item) <= 128:
            raise _invalid(field, f"{field} must hold strings of 1..128 characters")
        if allowed is not None and item not in allowed:
            raise _invalid(field, f"{item!r} is not an event type")
    return tuple(dict.fromkeys(value))


def parse_request(body: Any) -> WebhookRequest:
    """A create request from the admin API's JSON (or the CLI's flags, as the same dict)."""
    if not isinstance(body, dict):
        raise ProtocolError(ErrorCode.INVALID, "the body must be an object")
    url = body.get("url")
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        raise _invalid("url", "url must be an http(s) URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("url", "url must be an http(s) URL with a host")
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > 200:
        raise _invalid("description", "description must be a string of at most 200 characters")
    return WebhookRequest(
        url=url,
        incidents=_filter(body.get("incidents"), "incidents"),
        categories=_filter(body.get("categories"), "categories"),
        types=_filter(body.get("types"), "types", FILTER_TYPES),
        description=description,
        modes=_modes(body.get("modes")),
    )


def _modes(value: Any) -> tuple[str, ...]:
    """Which incident modes a subscription takes (SPEC 28): default live only."""
    if value is None:
        return (v1.LIVE_MODE,)
    if value == "all":
        return v1.MODES
    if not isinstance(value, list) or not value or any(m not in v1.MODES for m in value):
        raise _invalid("modes", f"modes must be 'all' or a non-empty list of {', '.join(v1.MODES)}")
    return tuple(m for m in v1.MODES if m in value)


class Webhooks:
    def __init__(
        self, store: WebhookStore, record: Record, config: WebhookConfig | None = None
    ) -> None:
        self.store, self.record = store, record
        self.config = config or WebhookConfig()
        #: Called after a change delivery should notice at once (a replay).
        self.on_change: Callable[[], None] = lambda: None

    async def _audited(self, entry: AuditEntry, step: Callable[[], Awaitable[Any]]) -> Any:
        try:
            result = await step()
        except ProtocolError as err:
            await self.record(replace(entry, outcome=err.code.code))
            raise
        await self.record(entry)
        return result

    async def _own(self, org: str | None, sub_id: str) -> Subscription:
        """The subscription, if ``org`` may manage it; one refusal for absent and foreign."""
        sub = await self.store.get(sub_id)
        if sub is None or (org is not None and sub.org_id != org):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such webhook")
        return sub

    async def create(
        self, actor: str, org: str, ask: WebhookRequest, address: str = ""
    ) -> tuple[Subscription, str]:
        """A new subscription of ``org``, and its secret (shown this once)."""
        secret, now = new_secret(), now_ms()
        sub = Subscription(
            id="wh_" + secrets.token_hex(8),
            org_id=org,
            url=ask.url,
            incidents=ask.incidents,
            categories=ask.categories,
            types=ask.types,
            modes=ask.modes,
            secrets=(SigningSecret(secret, now),),
            created_ms=now,
            created_by=actor,
            description=ask.description,
        )
        entry = AuditEntry(actor, "webhook.create", sub.id, "ok", address, _detail(sub))
        await self._audited(entry, lambda: self.store.create(sub))
        self.on_change()
        return sub, secret

    async def listed(self, org: str | None) -> list[Subscription]:
        return [s for s in await self.store.all() if org is None or s.org_id == org]

    async def get(self, org: str | None, sub_id: str) -> Subscription:
        return await self._own(org, sub_id)

    async def delete(self, actor: str, org: str | None, sub_id: str, address: str = "") -> None:
        entry = AuditEntry(actor, "webhook.delete", sub_id, "ok", address)

        async def step() -> None:
            sub = await self._own(org, sub_id)
            if not await self.store.delete(sub.id):
                raise ProtocolError(ErrorCode.NOT_FOUND, "no such webhook")

        await self._audited(entry, step)
        self.on_change()

    async def rotate(
        self,
        actor: str,
        org: str | None,
        sub_id: str,
        window_s: float | None = None,
        address: str = "",
    ) -> tuple[Subscription, str]:
        """A new secret; the current one stays valid for ``window_s`` (both are signed with)."""
        window = self.config.rotation_s if window_s is None else window_s
        if not 0 <= window <= MAX_ROTATION_S:
            raise _invalid("window_s", f"window_s must be 0..{MAX_ROTATION_S}")
        secret, now = new_secret(), now_ms()
        entry = AuditEntry(actor, "webhook.rotate", sub_id, "ok", address, {"window_s": window})

        async def step() -> Subscription:
            sub = await self._own(org, sub_id)
            # The newest secret stays valid for the window; older ones end now.
            current = sub.secrets[0] if sub.secrets else None
            kept = (
                (replace(current, expires_ms=now + int(window * 1000)),)
                if current is not None and window > 0 and current.valid(now)
                else ()
            )
            rotated = (SigningSecret(secret, now), *kept)
            await self.store.set_secrets(sub.id, rotated)
            return replace(sub, secrets=rotated)

        sub: Subscription = await self._audited(entry, step)
        return sub, secret

    async def replay(
        self,
        actor: str,
        org: str | None,
        sub_id: str,
        incident: str,
        from_seq: int,
        address: str = "",
    ) -> Subscription:
        """Deliver ``incident`` again from ``from_seq`` on; a disabled subscription is enabled."""
        if from_seq < 1:
            raise _invalid("from_seq", "from_seq must be at least 1")
        detail = {"incident": incident, "from_seq": from_seq}
        entry = AuditEntry(actor, "webhook.replay", sub_id, "ok", address, detail)

        async def step() -> Subscription:
            sub = await self._own(org, sub_id)
            await self.store.rewind(sub.id, incident, from_seq - 1)
            if not sub.state.enabled or sub.state.failures:
                await self.store.save_state(sub.id, DeliveryState())
            await self.store.record(
                sub.id,
                DeliveryRecord(
                    now_ms(), "notice", incident, from_seq, error=f"replay from seq {from_seq}"
                ),
                self.config.keep,
            )
            return replace(sub, state=DeliveryState())

        sub: Subscription = await self._audited(entry, step)
        self.on_change()
        return sub

    async def deliveries(self, org: str | None, sub_id: str, limit: int) -> list[DeliveryRecord]:
        sub = await self._own(org, sub_id)
        return await self.store.deliveries(sub.id, limit)


def _detail(sub: Subscription) -> dict[str, Any]:
    wire = sub.to_wire()
    return {"org": sub.org_id, "url": sub.url, "filters": wire["filters"]}
