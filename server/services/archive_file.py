"""Archive files: an incident's whole log as a verifiable JSONL export (SPEC section 25).

An archive is the JSONL export format of section 23 (header, one envelope
per line, trailer with the signed head), written with every event whole:
content, visibility and salt, so the file alone rebuilds the incident and
``liaison verify`` checks every digest and link of it. It is written to
``<name>.partial``, fsynced, renamed and its directory fsynced, then read
back from disk and verified before anything leaves hot storage.

Reading one back for a reader (``shaped_export``) folds the file into the
incident's state and shapes each event through the same audience function
as a live export, so an archive never shows a reader more than the hot log
did.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from protocol.liaison_verify import Verifier
from server.domain import summary
from server.domain.audience import Reader, event_meta
from server.domain.events import StoredEvent
from server.domain.incident import IncidentState
from server.domain.sharing import AgreementsView
from server.services.anchors import NodeSigner, SignedHead
from server.services.envelope import envelope, from_envelope, shaped
from server.storage.base import EventLog, LogHead, Tombstone
from server.storage.files import FILE_MODE, private_dir

#: Events read from the log (or an archive file) at a time.
PAGE = 1000
#: The reader an archive is written for: the whole log.
ARCHIVE_READER = {"user": "retention", "org": "*"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class ArchiveFailed(Exception):
    """An archive could not be written or did not verify: nothing was removed."""


@dataclass(frozen=True, slots=True)
class Written:
    name: str
    sha256: str
    size: int
    events: int
    last_hash: str
    signed: SignedHead
    #: The incident's summary (server/domain/summary.py) at the archived head,
    #: folded from the header events as they were written: its status,
    #: category and organisations there, with no projection loaded.
    summary: dict[str, Any]
    #: ts of the last event.
    last_ts: int


def file_name(incident: str, epoch: str, seq: int) -> str:
    """``<incident>-<epoch>-<seq>.jsonl``, with anything unsafe in a path replaced."""
    return _UNSAFE.sub("_", f"{incident}-{epoch}-{seq}") + ".jsonl"


def _line(value: Any) -> bytes:
    return orjson.dumps(value) + b"\n"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create(path: Path) -> IO[bytes]:
    """A new file only this user can read (archives hold every restricted entry)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    return os.fdopen(fd, "wb")


def _finish(file: IO[bytes], tmp: Path, final: Path) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()
    tmp.replace(final)
    _fsync_dir(final.parent)


async def write_archive(
    log: EventLog, signer: NodeSigner, directory: Path, incident: str, head: LogHead
) -> Written:
    """The incident's log up to ``head`` into a verified archive file in ``directory``."""
    await asyncio.to_thread(private_dir, directory)
    name = file_name(incident, head.epoch, head.seq)
    final, tmp = directory / name, directory / (name + ".partial")
    file = await asyncio.to_thread(_create, tmp)
    try:
        header = {
            "liaison_export": 1,
            "kind": "header",
            "incident": incident,
            "epoch": head.epoch,
            "reader": ARCHIVE_READER,
            "format": "jsonl",
            "archive": True,
            "exported_ms": int(time.time() * 1000),
            "head_seq": head.seq,
        }
        await asyncio.to_thread(file.write, _line(header))
        count, last_hash, last_ts = 0, "", 0
        fold: summary.Header = {}
        while count < head.seq:
            events = await log.read(incident, count, min(PAGE, head.seq - count))
            if not events:
                break
            await asyncio.to_thread(file.write, b"".join(_line(envelope(ev)) for ev in events))
            summary.merge(fold, (ev for ev in events if ev.type in summary.HEADER_TYPES))
            count, last_hash, last_ts = events[-1].seq, events[-1].hash, events[-1].ts_ms
        if count != head.seq:
            raise ArchiveFailed(f"{incident}: the log ends at seq {count}, not {head.seq}")
        signed = signer.signed_head(incident, head.epoch, count, last_hash)
        trailer = {
            "liaison_export": 1,
            "kind": "trailer",
            "incident": incident,
            "epoch": head.epoch,
            "events": count,
            "head": signed.statement,
            "signature": signed.signature,
        }
        await asyncio.to_thread(file.write, _line(trailer))
        await asyncio.to_thread(_finish, file, tmp, final)
    except BaseException:
        file.close()
        tmp.unlink(missing_ok=True)
        raise
    sha, size = await asyncio.to_thread(verify_file, final, signer.public_hex, incident, count)
    at_head = summary.summary(incident, fold, count, last_ts)
    return Written(name, sha, size, count, last_hash, signed, at_head, last_ts)


def verify_file(path: Path, key: str, incident: str, seq: int) -> tuple[str, int]:
    """Verify an archive as ``liaison verify --key`` would; its sha256 and size.

    Raises ArchiveFailed unless it holds exactly ``incident`` up to ``seq``,
    every link and digest checks and the head is signed by ``key``.
    """
    verifier = Verifier(key)
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            digest.update(raw)
            size += len(raw)
            verifier.line(number, raw.decode())
    report = verifier.finish()
    if not report.ok or report.incidents != [(incident, seq)]:
        raise ArchiveFailed(f"{path.name} does not verify: {report.problems[:3]}")
    return digest.hexdigest(), size


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _pages(path: Path) -> Iterator[list[StoredEvent]]:
    with path.open("rb") as file:
        page: list[StoredEvent] = []
        for raw in file:
            item = orjson.loads(raw)
            if "liaison_export" in item:
                continue
            page.append(from_envelope(item))
            if len(page) >= PAGE:
                yield page
                page = []
        if page:
            yield page


async def archived_pages(path: Path) -> AsyncIterator[list[StoredEvent]]:
    """The events of an archive file, a page at a time, read off the event loop."""
    pages = await asyncio.to_thread(_pages, path)
    done = object()
    while (page := await asyncio.to_thread(next, pages, done)) is not done:
        assert isinstance(page, list)
        yield page


@dataclass(slots=True)
class Shaped:
    """Counts of one archived export, for its audit record."""

    events: int = 0
    placeholders: int = 0


async def shaped_export(
    path: Path,
    tombstone: Tombstone,
    reader: Reader,
    rules: AgreementsView,
    counts: Shaped,
) -> AsyncIterator[bytes]:
    """The archive as ``reader`` may see it: the JSONL export of section 23."""
    incident, epoch = str(tombstone["incident"]), str(tombstone["epoch"])
    state = IncidentState(id=incident, epoch=epoch)
    async for page in archived_pages(path):
        for ev in page:
            state.apply(ev)
    sight = state.sight(reader, rules, int(time.time() * 1000))
    header = {
        "liaison_export": 1,
        "kind": "header",
        "incident": incident,
        "epoch": epoch,
        "reader": {"user": reader.user, "org": reader.org},
        "format": "jsonl",
        "archive": True,
        "exported_ms": int(time.time() * 1000),
        "head_seq": tombstone["seq"],
    }
    yield _line(header)
    async for page in archived_pages(path):
        out = []
        for ev in page:
            aud = sight.of(event_meta(ev))
            counts.placeholders += not aud.visible
            out.append(_line(shaped(ev, aud)))
        counts.events += len(page)
        yield b"".join(out)
    head = tombstone["head"]
    trailer = {
        "liaison_export": 1,
        "kind": "trailer",
        "incident": incident,
        "epoch": epoch,
        "events": counts.events,
        "head": head["statement"],
        "signature": head["signature"],
    }
    yield _line(trailer)
