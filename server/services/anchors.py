"""Signed chain heads and the anchor log an auditor keeps (SPEC section 23).

A chain head alone proves nothing against whoever runs the server: they can
rewrite an incident's log and recompute every link. Two things close that:

* **Signatures.** The node signs each head it hands out with an Ed25519 key
  generated on first start (0600 in the data dir, or shared in Redis by every
  node), whose public key is served at ``GET /api/v1/node-key``. A head
  signed by another key is not the server's.
* **Anchors.** Every so often (``anchor_interval_s``), at close (the sweep
  after an ``incident.status_changed`` to ``closed``), at every export and at
  shutdown, the node appends each moved head to an append-only, hash-chained
  anchor log (the audit log's storage, its own file or keys). An auditor
  fetches it (``GET /api/v1/anchors``) and keeps a copy: a history rewritten
  later no longer holds the anchored hash at that seq, whatever it is signed
  with, and the verifier says so.

The statement signed is the canonical JSON (SPEC 14.1) of
``{"type": "liaison.chain_head", "incident", "epoch", "seq", "hash",
"ts_ms", "key"}``: strings and integers only, so every JSON library writes
the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.liaison_verify import HEAD_TYPE
from server.errors import StorageUnavailable
from server.storage.audit import AuditEntry, AuditLog
from server.storage.base import EventLog
from server.storage.secret import SecretStore

log = logging.getLogger(__name__)

#: The actor and action of an anchor record in the anchor log.
ANCHOR_ACTOR = "node"
ANCHOR_ACTION = "chain.anchor"


class NodeSigner:
    """The node's Ed25519 key: signs head statements."""

    def __init__(self, seed_hex: bytes) -> None:
        seed = bytes.fromhex(seed_hex.decode()[:64])
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        #: 64 lowercase hex digits: what auditors pin.
        self.public_hex = raw.hex()

    @classmethod
    async def load(cls, store: SecretStore) -> NodeSigner:
        """The deployment's key, generated (32 random bytes) on first use."""
        return cls(await store.load())

    def statement(
        self, incident: str, epoch: str, seq: int, hash_: str, ts_ms: int
    ) -> dict[str, Any]:
        return {
            "type": HEAD_TYPE,
            "incident": incident,
            "epoch": epoch,
            "seq": seq,
            "hash": hash_,
            "ts_ms": ts_ms,
            "key": self.public_hex,
        }

    def sign(self, statement: dict[str, Any]) -> str:
        return self._key.sign(orjson.dumps(statement, option=orjson.OPT_SORT_KEYS)).hex()

    def signed_head(
        self, incident: str, epoch: str, seq: int, hash_: str, ts_ms: int | None = None
    ) -> SignedHead:
        ts = int(time.time() * 1000) if ts_ms is None else ts_ms
        statement = self.statement(incident, epoch, seq, hash_, ts)
        return SignedHead(statement, self.sign(statement))


@dataclass(frozen=True, slots=True)
class SignedHead:
    statement: dict[str, Any]
    signature: str

    def to_wire(self) -> dict[str, Any]:
        return {"statement": self.statement, "signature": self.signature}


class Anchorer:
    """Appends signed heads to the anchor log: on demand, by a periodic sweep, at close."""

    def __init__(
        self, log: EventLog, anchors: AuditLog, key: SecretStore, interval_s: float
    ) -> None:
        self.log, self.anchors, self.key = log, anchors, key
        self.interval_s = interval_s
        self._signer: NodeSigner | None = None
        #: incident -> (epoch, seq) last anchored by this node.
        self._anchored: dict[str, tuple[str, int]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def signer(self) -> NodeSigner:
        if self._signer is None:
            raise StorageUnavailable("the node key is not loaded yet")
        return self._signer

    async def start(self) -> None:
        """Load the key; learn what is anchored already (a restart does not repeat it); sweep."""
        self._signer = await NodeSigner.load(self.key)
        after = 0
        while page := await self.anchors.read(after, 1000):
            for record in page:
                st = record.detail.get("statement") or {}
                self._anchored[st.get("incident", "")] = (st.get("epoch", ""), st.get("seq", 0))
            after = page[-1].seq
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._run(), name="liaison-anchors")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StorageUnavailable):
            await self.sweep()  # the heads as they are at shutdown

    async def anchor(self, head: SignedHead, reason: str) -> None:
        """Append ``head`` unless this node anchored that very position already."""
        st = head.statement
        if self._anchored.get(st["incident"]) == (st["epoch"], st["seq"]):
            return
        entry = AuditEntry(
            ANCHOR_ACTOR,
            ANCHOR_ACTION,
            st["incident"],
            "ok",
            "",
            {**head.to_wire(), "reason": reason},
        )
        await self.anchors.append(entry, int(time.time() * 1000))
        self._anchored[st["incident"]] = (st["epoch"], st["seq"])

    async def head_of(self, incident: str) -> tuple[SignedHead, str] | None:
        """The incident's signed head now, and the type/status its last event set."""
        head = await self.log.head(incident)
        if head is None or head.seq == 0:
            return None
        events = await self.log.read(incident, head.seq - 1, 1)
        if not events:
            return None
        last = events[0]
        closed = last.type == "incident.status_changed" and last.body.get("status") == "closed"
        signed = self.signer.signed_head(incident, last.epoch, last.seq, last.hash)
        return signed, "close" if closed else "periodic"

    async def sweep(self) -> int:
        """Anchor every head that moved since this node last anchored it; how many."""
        count = 0
        incidents = await self.log.incidents()
        heads = await self.log.heads(incidents)  # one read, not one per incident
        for incident in incidents:
            head = heads.get(incident)
            if head is None or self._anchored.get(incident) == (head.epoch, head.seq):
                continue
            found = await self.head_of(incident)
            if found is not None:
                await self.anchor(*found)
                count += 1
        return count

    async def _run(self) -> None:
        """Sweep every ``interval_s``; a failed sweep is logged and retried next time."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("anchoring chain heads failed; retrying in %s s", self.interval_s)
