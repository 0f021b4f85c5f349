"""The fan-out interfaces: ``Broker`` (live events per incident) and ``Presence``.

Both are ephemeral: nothing here is the truth. The truth is the log
(server/storage/base.py, ``EventLog``); a broker only tells this node's
listeners, fast, what the log has just made durable, and presence only says
who is looking right now.

    EventLog.append ──(durable)──▶ Broker.publish ──▶ listeners on this node
          │                             │   (sync, before the append is acked)
          └── Redis: append.lua also PUBLISHes on the incident's channel, in the
              same atomic step ──▶ the brokers of the other nodes ──▶ their listeners
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from server.domain.events import StoredEvent
from server.storage.base import LogHead

#: Receives committed events of one incident, in seq order. Called on the event
#: loop, synchronously: it must not block (no I/O, no awaits). An exception it
#: raises is logged by the broker and does not reach other listeners.
Listener = Callable[[Sequence[StoredEvent]], None]


class History(Protocol):
    """What a broker may read to fill a gap: the log (``EventLog`` satisfies it)."""

    async def read(self, incident: str, after_seq: int, limit: int) -> list[StoredEvent]: ...

    async def head(self, incident: str) -> LogHead | None: ...


class Broker(Protocol):
    """Live delivery of committed events to this node's listeners, per incident.

    Delivery semantics:

    * **Only what is stored.** The only events a broker delivers are those the
      log handed to ``publish`` after making them durable (on this node or, for
      a shared broker, on any node), or that it read back from the log itself.
      A refused append, or a retry answered with the original event, publishes
      nothing.
    * **Ordering.** Per incident, each listener sees events in seq order. Across
      incidents there is no order.
    * **Delivery before ack.** ``publish`` is synchronous: when it returns, every
      listener of this node subscribed to the incident has been handed the
      events. The log calls it before it resolves the appends, so a client never
      gets the ack of a post before the post itself on the same node.
    * **Publish plus history is atomic** on the Redis backend: the append script
      stores the events and publishes them on the incident's channel in one
      step, so the channel's order is the seq order and nothing is published
      that is not stored. ``publish`` then only delivers locally (the other
      nodes hear it from the channel). The memory broker has no other nodes.
    * **Gaps.** The memory broker delivers exactly what the log publishes, which
      has no gaps and no repeats. The Redis broker's channel is at-most-once
      (a dropped connection loses messages silently), so it tracks the last
      seq per incident and fills any gap from ``History`` before delivering
      later events, and drops repeats: listeners see each seq once, in order.
      Still, a listener must not *assume* gaplessness: it compares seqs and
      reads the log itself on a gap (the hub and projections do). Resume is
      always served from the log, never from the broker.
    """

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Stop delivering; listeners are forgotten."""
        ...

    def publish(self, incident: str, events: Sequence[StoredEvent]) -> None:
        """Deliver events the log just made durable, in seq order, to this node.

        Called by the log only, once per committed run of one incident, before
        it acknowledges them. Must not block and must not raise for a failing
        listener.
        """
        ...

    async def subscribe(self, incident: str, listener: Listener) -> None:
        """Deliver the incident's committed events to ``listener`` from now on.

        Returns once the live path is active: every event committed (on any
        node) after this returns reaches the listener. Read the log *after*
        subscribing to get everything before, and let seq drop the overlap.
        Raises StorageUnavailable if the live path could not be set up; then
        nothing stays registered.
        """
        ...

    def unsubscribe(self, incident: str, listener: Listener) -> None:
        """Stop delivering to ``listener`` at once (cleanup such as a Redis
        UNSUBSCRIBE may lag). Unknown listeners are ignored."""
        ...

    def health(self) -> dict[str, Any]:
        """``healthy`` (bool): whether live delivery from every node works now."""
        ...


class Presence(Protocol):
    """Who is online per incident: a user with a live connection following it.

    Presence is ephemeral (not an event in the log) and best effort: a write
    that fails (shared storage away) is not raised; it is renewed or expires.

    * A claim is one (incident, user, connection). ``join`` of a claim held
      already changes nothing (a re-follow never inflates presence), and one
      ``leave`` drops it. A user is online while at least one claim holds.
    * A node that dies without leaving: its claims are gone at once on the
      memory backend (it is the only node), and on the shared one they expire
      ``ttl_s`` after the node last renewed them; nobody has to notice the death.
    """

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Give up this node's claims."""
        ...

    async def join(self, incident: str, user: str, connection: str) -> None: ...

    async def leave(self, incident: str, user: str, connection: str) -> None: ...

    async def online(self, incident: str) -> list[str]:
        """User ids with at least one live claim on the incident, sorted.

        Raises StorageUnavailable if shared presence cannot be read.
        """
        ...
