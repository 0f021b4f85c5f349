"""Web Push on one node: the store, the key, the dispatcher; subscribe and unsubscribe.

Built by the composition root (server/app.py); started after storage (the
key may live in Redis) and closed before it.
"""

from __future__ import annotations

import time
from typing import Any

from server.auth import AccessClaims
from server.backends import node_id
from server.domain.model import Principal
from server.metrics import Metrics
from server.services.accounts import Accounts
from server.services.feed import FeedService
from server.services.push import PushConfig, PushDispatcher
from server.services.push_send import PushSender, load_vapid
from server.services.push_subscribe import parse
from server.settings import Settings
from server.storage.leases import Leases
from server.storage.push import PushStore, PushSubscription
from server.storage.vapid import VapidKeyStore

#: Seconds a push service has to answer one push.
SEND_TIMEOUT_S = 10.0


class PushRuntime:
    def __init__(
        self,
        *,
        settings: Settings,
        store: PushStore,
        keys: VapidKeyStore,
        feed: FeedService,
        accounts: Accounts,
        leases: Leases,
        metrics: Metrics,
        config: PushConfig | None = None,
    ) -> None:
        self.settings, self.store, self.keys, self.feed = settings, store, keys, feed
        self.accounts, self.leases, self.metrics = accounts, leases, metrics
        self.config = config or PushConfig(ttl_s=settings.push_ttl_s, lease_s=settings.push_lease_s)
        self.dispatcher: PushDispatcher | None = None
        self.public_key = ""

    async def start(self) -> None:
        await self.store.open()
        sender = PushSender(
            load_vapid(await self.keys.load()), self.settings.vapid_subject, SEND_TIMEOUT_S
        )
        self.public_key = sender.public_key
        self.dispatcher = PushDispatcher(
            store=self.store,
            feed=self.feed,
            directory=self.accounts.directory,
            alive=self.alive,
            leases=self.leases,
            node=node_id(self.settings) if self.settings.redis_url else "embedded",
            sender=sender,
            config=self.config,
        )
        self.dispatcher.watch(self.metrics)
        await self.dispatcher.start()

    async def close(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.close()
            self.dispatcher = None
        await self.store.close()

    def alive(self, sub: PushSubscription) -> bool:
        """Whether the session that subscribed still stands (no I/O: the guard's view)."""
        claims = AccessClaims(sub=sub.user_id, exp=0, iat_ms=sub.created_ms, sid=sub.session)
        return self.accounts.still_valid(claims)

    async def subscribe(self, who: Principal, claims: AccessClaims, body: Any) -> PushSubscription:
        endpoint, p256dh, auth = parse(body, self.settings.push_services)
        now = int(time.time() * 1000)
        sub = PushSubscription(
            endpoint=endpoint,
            p256dh=p256dh,
            auth=auth,
            user_id=who.user_id,
            session=claims.sid,
            created_ms=now,
            expires_ms=now + self.settings.refresh_ttl_s * 1000,
        )
        if not await self.store.of_user(who.user_id):
            # Pushes start now: not the backlog since an older subscription ended.
            await self.store.set_cursor(who.user_id, (await self.feed.start_cursor()).encode())
        await self.store.add(sub)
        return sub

    async def unsubscribe(self, who: Principal, endpoint: str) -> bool:
        return await self.store.remove(endpoint, who.user_id)
