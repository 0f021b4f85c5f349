"""StoredEvent <-> msgpack, for backends that store or publish bytes (Redis)."""

from __future__ import annotations

from typing import Any

import msgpack

from protocol.codec import msgpack_array_header
from server.domain.events import StoredEvent


def pack_event(ev: StoredEvent) -> bytes:
    data: bytes = msgpack.packb(
        [
            ev.incident,
            ev.seq,
            ev.epoch,
            ev.type,
            ev.ts_ms,
            ev.actor_user,
            ev.actor_org,
            ev.actor_name,
            ev.client_id,
            list(ev.visibility) if ev.visibility is not None else None,
            ev.body,
            ev.digest,
            ev.hash,
        ],
        use_bin_type=True,
    )
    return data


def unpack_event(data: bytes) -> StoredEvent:
    return event_from_fields(msgpack.unpackb(data, raw=False))


def event_from_fields(f: list[Any]) -> StoredEvent:
    """A StoredEvent from its fields in storage order (see pack_event)."""
    return StoredEvent(
        incident=f[0],
        seq=f[1],
        epoch=f[2],
        type=f[3],
        ts_ms=f[4],
        actor_user=f[5],
        actor_org=f[6],
        actor_name=f[7],
        client_id=f[8],
        visibility=tuple(f[9]) if f[9] is not None else None,
        body=f[10],
        digest=f[11],
        hash=f[12],
    )


def pack_events(packed: list[bytes]) -> bytes:
    """A msgpack array of already-packed events (the pub/sub payload)."""
    return msgpack_array_header(len(packed)) + b"".join(packed)


def unpack_events(data: bytes) -> list[StoredEvent]:
    return [event_from_fields(f) for f in msgpack.unpackb(data, raw=False)]
