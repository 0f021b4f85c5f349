"""The archive files of archived incidents, carried by a backup and put back by its restore.

An archived incident lives only in its archive file (the databases keep a
tombstone naming the file and its sha256), so a backup without the files
restores tombstones of incidents nobody can read any more. A backup takes
the file of every tombstone in its snapshot whose state is ``archived``
(a purged one has none), each checked against the tombstone's sha256; a
file that is missing or differs fails the backup, naming it, unless the
operator chose to back the directory up on its own (``--without-archives``).

The manifest lists them (``archives``: file name to sha256); the tar holds
each as ``archive/<file>``. A restore writes each under a ``.partial`` name,
checks its sha256, fsyncs and renames it into the archive directory, as the
retention job writes them. A file already there with the same sha256 is
kept (a shared directory in Redis mode); a different one is replaced only
with ``--force``.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from server.storage.files import FILE_MODE, private_dir

#: The tar members' folder.
PREFIX = "archive/"
_CHUNK = 1 << 20


class ArchiveFileError(Exception):
    """An archive file a backup or restore cannot carry; the message names it."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _plain_name(name: Any) -> str:
    """A file name the archive directory may hold: no folder, no way out of it."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ArchiveFileError(f"an archive file name {name!r} is not a plain file name")
    return name


def files_to_carry(
    tombstones: Iterable[dict[str, Any]], archive_dir: Path
) -> tuple[dict[str, str], list[tuple[str, Path]]]:
    """The manifest's ``archives`` and the tar members for these tombstones.

    Every tombstone still ``archived`` must have its file in ``archive_dir``
    with the tombstone's sha256.
    """
    listed: dict[str, str] = {}
    members: list[tuple[str, Path]] = []
    for tombstone in sorted(tombstones, key=lambda t: str(t.get("file"))):
        if tombstone.get("state") != "archived":
            continue
        name = _plain_name(tombstone.get("file"))
        path = archive_dir / name
        incident = tombstone.get("incident")
        if not path.is_file():
            raise ArchiveFileError(
                f"the archive {name} of incident {incident} is not in {archive_dir}"
            )
        found = sha256_of(path)
        if found != tombstone.get("sha256"):
            raise ArchiveFileError(
                f"the archive {path} of incident {incident} has sha256 {found},"
                f" its tombstone says {tombstone.get('sha256')}"
            )
        listed[name] = found
        members.append((PREFIX + name, path))
    return listed, members


class Restorer:
    """Puts a backup's archive files into ``archive_dir``, checking each."""

    def __init__(
        self, manifest: dict[str, Any], archive_dir: Path, force: bool, say: Callable[[str], None]
    ) -> None:
        self._expected: dict[str, str] = dict(manifest.get("archives") or {})
        self._dir = archive_dir
        self._force = force
        self._say = say
        self.restored = 0

    def take(self, member: tarfile.TarInfo, source: IO[bytes]) -> None:
        """One ``archive/<file>`` member: checked, written, renamed into place."""
        name = _plain_name(member.name.removeprefix(PREFIX))
        expected = self._expected.get(name)
        if expected is None or not member.isfile():
            raise ArchiveFileError(f"unexpected member {member.name!r}")
        private_dir(self._dir)
        target = self._dir / name
        if target.exists():
            if sha256_of(target) == expected:
                self._say(f"keeping {name}: the archive directory holds it already")
                self.restored += 1
                return
            if not self._force:
                raise ArchiveFileError(
                    f"{target} exists and differs from the backup's: pass --force to replace it"
                )
        self._say(f"restoring archive {name} ({member.size} bytes)")
        partial = target.with_name(name + ".partial")
        digest = hashlib.sha256()
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as file:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    file.write(chunk)
                file.flush()
                os.fsync(file.fileno())
            if digest.hexdigest() != expected:
                raise ArchiveFileError(f"{member.name} in the backup does not match its sha256")
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        self.restored += 1

    def check_complete(self) -> None:
        if self.restored != len(self._expected):
            raise ArchiveFileError(
                f"the backup lists {len(self._expected)} archive files and holds {self.restored}"
            )
