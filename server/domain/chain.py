"""The per-incident hash chain.

``digest = sha256(canonical content)`` and ``hash = sha256(prev_hash || digest)``
with ``prev_hash`` of seq 1 being 64 zeros. Placeholders for restricted events
carry digest and hash, so anyone can verify the chain of an export offline
without seeing restricted content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from server.domain.events import EventDraft, StoredEvent

GENESIS = "0" * 64


def canonical_content(
    *,
    incident: str,
    seq: int,
    epoch: str,
    type: str,
    ts_ms: int,
    actor_user: str,
    actor_org: str,
    client_id: str,
    visibility: tuple[str, ...] | None,
    body: dict[str, Any],
) -> bytes:
    """Canonical bytes: sorted keys, no whitespace, UTF-8."""
    return orjson.dumps(
        {
            "incident": incident,
            "seq": seq,
            "epoch": epoch,
            "type": type,
            "ts_ms": ts_ms,
            "actor_user": actor_user,
            "actor_org": actor_org,
            "client_id": client_id,
            "visibility": list(visibility) if visibility is not None else None,
            "body": body,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def digest_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def chain(prev_hash: str, digest: str) -> str:
    return hashlib.sha256((prev_hash + digest).encode("ascii")).hexdigest()


def verify(links: Iterable[tuple[int, str, str]]) -> int | None:
    """Check (seq, digest, hash) links from seq 1; return the first bad seq, or None."""
    prev = GENESIS
    expected_seq = 1
    for seq, digest, hash_ in links:
        if seq != expected_seq or chain(prev, digest) != hash_:
            return seq
        prev, expected_seq = hash_, seq + 1
    return None


def sequence_draft(
    draft: EventDraft, epoch: str, prev_seq: int, prev_hash: str, ts_ms: int
) -> StoredEvent:
    """The stored form of a draft appended after (prev_seq, prev_hash): next seq, chained."""
    seq = prev_seq + 1
    digest = digest_of(
        canonical_content(
            incident=draft.incident,
            seq=seq,
            epoch=epoch,
            type=draft.type,
            ts_ms=ts_ms,
            actor_user=draft.actor_user,
            actor_org=draft.actor_org,
            client_id=draft.client_id,
            visibility=draft.visibility,
            body=draft.body,
        )
    )
    return StoredEvent(
        incident=draft.incident,
        seq=seq,
        epoch=epoch,
        type=draft.type,
        ts_ms=ts_ms,
        actor_user=draft.actor_user,
        actor_org=draft.actor_org,
        actor_name=draft.actor_name,
        client_id=draft.client_id,
        visibility=draft.visibility,
        body=draft.body,
        digest=digest,
        hash=chain(prev_hash, digest),
    )
