"""Rebuild protocol/vectors/envelopes.json from its own events.

Run ``python -m tests.regenerate_vectors``.

The content of each event (type, ids, ts, actor, body) is kept as the file
has it; what the server derives from that content is rebuilt with the
server's own code: salts, digests, hashes, the placeholder, the batch, and the
msgpack and JSON bytes. Run it after a change to the chain or the envelope,
then review the diff: the content must not move.

The vector incident began before chain rule 2 (SPEC section 14.1): seq 1 and 2
were stored without a salt and keep rule 1, seq 3 on carry one. So one chain
exercises both rules, as a data directory upgraded mid-incident does. A
vector salt is not random (the vectors must be stable): it is derived from the
seq, which no real salt ever is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import protocol
from protocol.codec import JsonCodec, MsgpackCodec
from protocol.v1 import RESTRICTED_TYPE
from server.domain import chain
from server.domain.events import StoredEvent
from server.services.envelope import envelope, from_envelope, placeholder

PATH = Path(protocol.__file__).parent / "vectors" / "envelopes.json"

#: Events up to this seq were stored before salts (chain rule 1).
LEGACY_UP_TO = 2


def vector_salt(seq: int) -> str | None:
    """A fixed salt for the vectors; real ones come from ``secrets``."""
    if seq <= LEGACY_UP_TO:
        return None
    return hashlib.sha256(f"liaison golden vector salt {seq}".encode()).hexdigest()


def rechain(events: list[StoredEvent]) -> list[StoredEvent]:
    """The events with their salts, digests and hashes rebuilt in seq order."""
    out, prev = [], chain.GENESIS
    for ev in events:
        salted = dataclasses.replace(ev, salt=vector_salt(ev.seq))
        digest = chain.event_digest(salted)
        prev = chain.chain(prev, digest)
        out.append(dataclasses.replace(salted, digest=digest, hash=prev))
    return out


def _encoded(name: str, value: Any) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "msgpack_hex": MsgpackCodec().encode(value).hex(),
        "json": JsonCodec().encode(value).decode("utf-8"),
    }


def regenerate(vectors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    full = [v["value"] for v in vectors if isinstance(v["value"], dict)]
    full = [v for v in full if v["type"] != RESTRICTED_TYPE]
    by_seq = {ev.seq: ev for ev in rechain([from_envelope(v) for v in full])}
    out = []
    for vector in vectors:
        value = vector["value"]
        if isinstance(value, list):
            batch = [_rebuilt(item, by_seq) for item in value]
            out.append(_encoded(vector["name"], batch))
        else:
            out.append(_encoded(vector["name"], _rebuilt(value, by_seq)))
    return out


def _rebuilt(value: dict[str, Any], by_seq: dict[int, StoredEvent]) -> dict[str, Any]:
    ev = by_seq[value["seq"]]
    return placeholder(ev) if value["type"] == RESTRICTED_TYPE else envelope(ev)


def main() -> None:
    vectors = json.loads(PATH.read_text("utf-8"))
    text = json.dumps(regenerate(vectors), ensure_ascii=False, indent=2) + "\n"
    PATH.write_text(text, "utf-8")


if __name__ == "__main__":
    main()
