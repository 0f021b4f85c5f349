"""StoredEvent <-> msgpack, for backends that store or publish bytes (Redis).

An event is the msgpack array of ``StoredEvent.to_fields()`` (storage order,
see server/domain/events.py).
"""

from __future__ import annotations

import msgpack

from protocol.codec import msgpack_array_header
from server.domain.events import StoredEvent


def pack_event(ev: StoredEvent) -> bytes:
    data: bytes = msgpack.packb(ev.to_fields(), use_bin_type=True)
    return data


def unpack_event(data: bytes) -> StoredEvent:
    return StoredEvent.from_fields(msgpack.unpackb(data, raw=False))


def pack_events(packed: list[bytes]) -> bytes:
    """A msgpack array of already-packed events (the pub/sub payload)."""
    return msgpack_array_header(len(packed)) + b"".join(packed)


def unpack_events(data: bytes) -> list[StoredEvent]:
    return [StoredEvent.from_fields(f) for f in msgpack.unpackb(data, raw=False)]
