"""Wire envelopes for stored events (see protocol/SPEC.md, "Events").

A restricted event becomes a placeholder for organisations that may not see it:
same incident, seq, epoch and chain link, nothing else, so gap detection and
offline chain verification keep working without leaking content. The event's
``salt`` goes only into the full envelope: without it a placeholder's digest
is a commitment nobody can test a guess against (SPEC section 14.1).
"""

from __future__ import annotations

from typing import Any

from protocol import PROTOCOL_VERSION
from protocol.v1 import RESTRICTED_TYPE
from server.domain.audience import Audience, redact_body, redacted_names
from server.domain.events import StoredEvent


def envelope(ev: StoredEvent) -> dict[str, Any]:
    """The wire form of a stored event (SPEC "Events"); key order is the wire's.

    ``salt`` is left out for an event stored before salts (chain rule 1), so
    its envelope is byte for byte what it always was.
    """
    env = {
        "v": PROTOCOL_VERSION,
        "type": ev.type,
        "incident": ev.incident,
        "seq": ev.seq,
        "epoch": ev.epoch,
        "ts": ev.ts_ms,
        "actor": {"user": ev.actor_user, "org": ev.actor_org, "name": ev.actor_name},
        "cid": ev.client_id,
        "visibility": list(ev.visibility) if ev.visibility is not None else None,
        "body": ev.body,
        "digest": ev.digest,
        "hash": ev.hash,
    }
    if ev.salt is not None:
        env["salt"] = ev.salt
    return env


def from_envelope(env: dict[str, Any]) -> StoredEvent:
    """The stored event an unrestricted envelope was built from (``envelope``'s inverse)."""
    actor, visibility = env["actor"], env["visibility"]
    return StoredEvent(
        incident=env["incident"],
        seq=env["seq"],
        epoch=env["epoch"],
        type=env["type"],
        ts_ms=env["ts"],
        actor_user=actor["user"],
        actor_org=actor["org"],
        actor_name=actor["name"],
        client_id=env["cid"],
        visibility=tuple(visibility) if visibility is not None else None,
        body=env["body"],
        digest=env["digest"],
        hash=env["hash"],
        salt=env.get("salt"),
    )


def placeholder(ev: StoredEvent) -> dict[str, Any]:
    """What a reader who may not see ``ev`` gets: the links, never the salt or a time."""
    return {
        "v": PROTOCOL_VERSION,
        "type": RESTRICTED_TYPE,
        "incident": ev.incident,
        "seq": ev.seq,
        "epoch": ev.epoch,
        "digest": ev.digest,
        "hash": ev.hash,
    }


def shaped(ev: StoredEvent, aud: Audience) -> dict[str, Any]:
    """The envelope for a reader of audience ``aud`` (server/domain/audience.py).

    A redacted envelope names what it left out in ``redacted`` and carries
    no ``salt``: with the salt and the rest of the content, a redacted date of
    birth or phone number could be guessed from the digest in seconds, as the
    placeholder attack of SPEC section 14.1 did. Such a reader verifies the
    chain's links, not the content, as for a placeholder.
    """
    if not aud.visible:
        return placeholder(ev)
    env = envelope(ev)
    if aud.whole:
        return env
    env["body"] = redact_body(ev.type, ev.body, aud)
    env.pop("salt", None)
    env["redacted"] = redacted_names(aud)
    return env
