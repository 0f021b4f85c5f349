#!/usr/bin/env python3
"""Check a Liaison JSONL export offline: every link, the head, its signature.

One file, standard library plus ``cryptography`` (for Ed25519), no import of
the server: an auditor copies it next to an export and runs

    python3 liaison_verify.py EXPORT.jsonl --key NODE_KEY [--anchors ANCHORS.jsonl]

``--key`` is the server's public key (64 hex digits, or a file holding them)
as the auditor obtained it once (``GET /api/v1/node-key``, ``liaison node-key``);
``--anchors`` a copy of the anchor log (``GET /api/v1/anchors``) the auditor
fetched earlier. The checks follow protocol/SPEC.md section 14 (the chain)
and section 22 (exports): exit 0 when everything holds, 1 with one line per
problem otherwise, 2 when the file cannot be read at all.

What each check catches: an edited event (its digest no longer matches its
content), an event dropped, inserted or moved (its seq or link breaks), a
cut-off file (no trailer, or a head that is not the last event), a head signed
by another key than the pinned one, and a history rewritten wholesale by
whoever runs the server, chain and signature recomputed (it no longer holds
the hash the auditor's anchor log recorded at that seq).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
EXPORT_VERSION = 1
#: What a signed head statement says it is (a domain separator for the key).
HEAD_TYPE = "liaison.chain_head"
RESTRICTED = "restricted"


# ------------------------------------------------------------- canonical JSON


def canonical_float(value: float) -> str:
    """orjson's float text (SPEC 14.1): shortest round-trip, exponent below 1e-5 and from 1e16."""
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = int(exponent)
    if power >= 0:
        return f"{mantissa}e+{power}"
    if power == -5:  # repr switches to an exponent one step earlier than orjson
        sign = "-" if mantissa.startswith("-") else ""
        digits = mantissa.lstrip("-").replace(".", "")
        return f"{sign}0.0000{digits}"
    return f"{mantissa}e-{-power}"


def canonical(value: Any) -> str:
    """The canonical JSON of SPEC 14.1: sorted keys, no whitespace, raw UTF-8."""
    if isinstance(value, dict):
        items = sorted(value.items())
        return (
            "{"
            + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{canonical(v)}" for k, v in items)
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, float):
        return canonical_float(value)
    return json.dumps(value, ensure_ascii=False)  # str, int, bool, None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def link(prev_hash: str, digest: str) -> str:
    return sha256_hex((prev_hash + digest).encode("ascii"))


def content_digest(env: dict[str, Any]) -> str:
    """The digest a whole envelope must carry (rule 2 with its salt, rule 1 without)."""
    content = {
        "incident": env["incident"],
        "seq": env["seq"],
        "epoch": env["epoch"],
        "type": env["type"],
        "ts_ms": env["ts"],
        "actor_user": env["actor"]["user"],
        "actor_org": env["actor"]["org"],
        "client_id": env["cid"],
        "visibility": env["visibility"],
        "body": env["body"],
    }
    salt = bytes.fromhex(env["salt"]) if env.get("salt") is not None else b""
    return sha256_hex(salt + canonical(content).encode("utf-8"))


def statement_bytes(statement: dict[str, Any]) -> bytes:
    """The bytes a head signature covers: the statement's canonical JSON."""
    return canonical(statement).encode("utf-8")


def check_signature(public_hex: str, signature_hex: str, data: bytes) -> bool:
    """Whether ``signature_hex`` is an Ed25519 signature of ``data`` by ``public_hex``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        key.verify(bytes.fromhex(signature_hex), data)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# ------------------------------------------------------------------ the checks


@dataclass(slots=True)
class Section:
    """One incident's part of an export: header, envelopes, trailer."""

    header: dict[str, Any]
    line: int
    incident: str = ""
    epoch: str = ""
    count: int = 0
    prev: str = GENESIS
    hashes: dict[int, str] = field(default_factory=dict)
    trailer: dict[str, Any] | None = None


@dataclass(slots=True)
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    incidents: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Verifier:
    """Feed it the export's lines in order; ``finish`` says what holds."""

    def __init__(self, key: str | None = None, anchors: Iterable[dict[str, Any]] = ()) -> None:
        self.key = key.lower() if key else None
        self.report = Report()
        self.section: Section | None = None
        self.anchors: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for record in anchors:
            self._keep_anchor(record)

    def problem(self, text: str) -> None:
        self.report.problems.append(text)

    # -- anchors

    def _keep_anchor(self, record: dict[str, Any]) -> None:
        inner = record.get("detail")
        detail: dict[str, Any] = inner if isinstance(inner, dict) else record
        statement, signature = detail.get("statement"), detail.get("signature")
        if not isinstance(statement, dict) or not isinstance(signature, str):
            self.problem(f"anchor {record.get('seq')}: not a signed head")
            return
        signer = str(statement.get("key", ""))
        if self.key is not None and signer != self.key:
            self.problem(
                f"anchor {record.get('seq')}: signed by key {signer[:16]}…, not the pinned key"
            )
            return
        if not check_signature(signer, signature, statement_bytes(statement)):
            self.problem(f"anchor {record.get('seq')}: its signature does not verify")
            return
        where = (str(statement.get("incident")), str(statement.get("epoch")))
        self.anchors.setdefault(where, []).append(statement)

    # -- lines

    def line(self, number: int, raw: str) -> None:
        if not raw.strip():
            return
        try:
            item = json.loads(raw)
        except ValueError:
            self.problem(f"line {number}: not JSON")
            return
        if not isinstance(item, dict):
            self.problem(f"line {number}: not a JSON object")
        elif item.get("liaison_export") is not None:
            self._marker(number, item)
        elif self.section is None:
            self.problem(f"line {number}: an event before any header")
        else:
            self._event(number, self.section, item)

    def _marker(self, number: int, item: dict[str, Any]) -> None:
        if item.get("liaison_export") != EXPORT_VERSION:
            self.problem(f"line {number}: export version {item.get('liaison_export')!r} unknown")
        elif item.get("kind") == "header":
            if self.section is not None:
                self.problem(
                    f"line {number}: a header before the trailer of {self.section.incident}"
                )
                self._close(self.section)
            self.section = Section(item, number, str(item.get("incident")), str(item.get("epoch")))
        elif item.get("kind") == "trailer":
            if self.section is None:
                self.problem(f"line {number}: a trailer without a header")
                return
            self.section.trailer = item
            self._close(self.section)
            self.section = None
        else:
            self.problem(f"line {number}: unknown kind {item.get('kind')!r}")

    def _event(self, number: int, s: Section, env: dict[str, Any]) -> None:
        try:
            seq, digest, hash_ = env["seq"], env["digest"], env["hash"]
        except KeyError as exc:
            self.problem(f"line {number}: no {exc.args[0]!r}: not an envelope")
            return
        where = f"line {number} (seq {seq})"
        expected = s.count + 1
        if seq != expected:
            self.problem(f"{where}: expected seq {expected}: an event is missing or out of order")
        if env.get("incident") != s.incident or env.get("epoch") != s.epoch:
            other = f"{env.get('incident')}/{env.get('epoch')}"
            self.problem(f"{where}: belongs to {other}, not {s.incident}/{s.epoch}")
        whole = env.get("type") != RESTRICTED and "redacted" not in env
        if whole:
            try:
                if content_digest(env) != digest:
                    self.problem(f"{where}: its content does not match its digest: edited")
            except (KeyError, TypeError, ValueError, AttributeError):
                self.problem(f"{where}: an envelope without the fields its digest covers")
        if link(s.prev, str(digest)) != hash_:
            self.problem(f"{where}: its hash does not chain from seq {expected - 1}")
        s.count, s.prev = expected, str(hash_)
        s.hashes[expected] = str(hash_)

    def _close(self, s: Section) -> None:
        name = f"incident {s.incident}"
        t = s.trailer
        if t is None:
            self.problem(f"{name}: no trailer: the export is cut short after seq {s.count}")
            self.report.incidents.append((s.incident, s.count))
            return
        statement, signature = t.get("head"), t.get("signature")
        if not isinstance(statement, dict) or not isinstance(signature, str):
            self.problem(f"{name}: the trailer holds no signed head")
            return
        if t.get("events") != s.count:
            self.problem(
                f"{name}: the trailer counts {t.get('events')} events, the file has {s.count}"
            )
        if statement.get("type") != HEAD_TYPE:
            self.problem(f"{name}: the head is not a {HEAD_TYPE} statement")
        if (statement.get("incident"), statement.get("epoch")) != (s.incident, s.epoch):
            self.problem(f"{name}: the signed head is of another incident or epoch")
        if statement.get("seq") != s.count or statement.get("hash") != s.prev:
            signed_seq = statement.get("seq")
            self.problem(
                f"{name}: the signed head is seq {signed_seq}, the last event seq {s.count}:"
                " events were added or removed at the end"
            )
        signer = str(statement.get("key", ""))
        if not check_signature(signer, signature, statement_bytes(statement)):
            self.problem(f"{name}: the head's signature does not verify: the head was altered")
        elif self.key is not None and signer != self.key:
            pinned = self.key[:16]
            self.problem(
                f"{name}: the head is signed by key {signer[:16]}…, not the pinned {pinned}…"
            )
        elif self.key is None:
            self.report.notes.append(
                f"{name}: signed by {signer}; pass --key to pin the server's key"
            )
        self._against_anchors(name, s)
        self.report.incidents.append((s.incident, s.count))

    def _against_anchors(self, name: str, s: Section) -> None:
        for anchored in self.anchors.get((s.incident, s.epoch), []):
            seq = anchored.get("seq")
            if not isinstance(seq, int):
                continue
            if seq > s.count:
                self.problem(
                    f"{name}: a head at seq {seq} was anchored but the export ends at seq {s.count}"
                )
            elif s.hashes.get(seq) != anchored.get("hash"):
                self.problem(
                    f"{name}: seq {seq} differs from the anchored head: history was rewritten"
                )

    def finish(self) -> Report:
        if self.section is not None:
            self._close(self.section)
            self.section = None
        if not self.report.incidents and not self.report.problems:
            self.problem("no incident in the file")
        return self.report


def read_key(raw: str | None) -> str | None:
    """A public key given as 64 hex digits, or the path of a file holding them."""
    if raw is None:
        return None
    path = Path(raw)
    text = path.read_text().strip() if path.is_file() else raw.strip()
    if text.startswith("{"):  # the JSON of GET /api/v1/node-key
        text = str(json.loads(text)["public_key"])
    return text


def read_anchors(path: str | None) -> Iterator[dict[str, Any]]:
    """Anchor records from a JSONL file, or the JSON of ``GET /api/v1/anchors``."""
    if path is None:
        return
    text = Path(path).read_text()
    if text.lstrip().startswith("{") and '"records"' in text.split("\n", 1)[0]:
        yield from json.loads(text)["records"]
        return
    for raw in text.splitlines():
        if raw.strip():
            yield json.loads(raw)


def verify_lines(
    lines: Iterable[str], key: str | None = None, anchors: Iterable[dict[str, Any]] = ()
) -> Report:
    verifier = Verifier(key, anchors)
    for number, raw in enumerate(lines, start=1):
        verifier.line(number, raw)
    return verifier.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a Liaison JSONL export offline.")
    parser.add_argument("file", help="the export (.jsonl)")
    parser.add_argument("--key", help="the server's Ed25519 public key: hex, or a file")
    parser.add_argument("--anchors", help="anchor records kept earlier (JSONL, or the API's JSON)")
    args = parser.parse_args(argv)
    try:
        key = read_key(args.key)
        anchors = list(read_anchors(args.anchors))
        with open(args.file, encoding="utf-8") as file:
            report = verify_lines(file, key, anchors)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}")
    for text in report.problems:
        print(f"FAIL: {text}")
    for incident, count in report.incidents:
        print(f"{'ok' if report.ok else 'checked'}: {incident}, {count} events")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
