"""``liaison export``, ``liaison verify``, ``liaison node-key``, ``liaison anchors``.

``export`` and ``anchors`` talk to a running server over REST, as the user
who logs in: an export holds what that user may see (SPEC section 23), and
the server audits it. ``verify`` checks a JSONL export offline with the
standalone verifier (protocol/liaison_verify.py). ``node-key`` prints the
public key the server signs chain heads with, from the data dir or Redis
(generated there if the server never started).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import aiohttp

    from server.settings import Settings
    from server.storage.secret import SecretStore

# aiohttp, rich, cryptography and the storage modules are imported where they
# are used: every `liaison` command builds this parser, and start-up time
# adds up in scripts that run many of them.

DEFAULT_URL = "http://127.0.0.1:8080"
EVENTS_HEADER = "X-Liaison-Export-Events"


class CliError(Exception):
    """A failure to report in one line, exit status 1."""


async def _token(session: aiohttp.ClientSession, url: str, args: argparse.Namespace) -> str:
    """``--token``/LIAISON_TOKEN, else a login as ``--user`` (LIAISON_PASSWORD, or asked)."""
    token = args.token or os.environ.get("LIAISON_TOKEN")
    if token:
        return str(token)
    if not args.user:
        raise CliError("give --user (or --token / LIAISON_TOKEN)")
    password = os.environ.get("LIAISON_PASSWORD") or getpass.getpass(f"password for {args.user}: ")
    body = {"username": args.user, "password": password}
    async with session.post(f"{url}/api/v1/auth/login", json=body) as resp:
        answer = await resp.json(content_type=None)
        if resp.status != 200:
            raise CliError(f"login refused: {answer.get('error', {}).get('message', resp.status)}")
        return str(answer["token"])


def _export_path(args: argparse.Namespace) -> str:
    if args.incident:
        return f"/api/v1/incidents/{args.incident}/export?format={args.format}"
    if args.since is None:
        raise CliError("give an incident id, or --from (and --to) for a date range")
    query = f"format={args.format}&from={args.since}" + (f"&to={args.until}" if args.until else "")
    return f"/api/v1/export?{query}"


async def _download(args: argparse.Namespace) -> int:
    import aiohttp
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    url = (args.url or os.environ.get("LIAISON_URL") or DEFAULT_URL).rstrip("/")
    out = Path(args.output or f"export.{args.format}")
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        token = await _token(session, url, args)
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(url + _export_path(args), headers=headers) as resp:
            if resp.status != 200:
                answer = await resp.json(content_type=None)
                raise CliError(f"export refused: {answer.get('error', {}).get('message')}")
            events = int(resp.headers.get(EVENTS_HEADER, "0"))
            by_line = args.format in ("jsonl", "csv")
            columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
            columns += (
                [TextColumn("{task.completed:.0f}/{task.total:.0f} events")]
                if by_line
                else [DownloadColumn()]
            )
            with (
                Progress(
                    *columns,
                    TimeRemainingColumn(),
                    console=Console(stderr=True),
                    disable=args.quiet,
                ) as bar,
                out.open("wb") as file,  # noqa: ASYNC230 - one task: the CLI
            ):
                task = bar.add_task("export", total=events if by_line else None)
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    file.write(chunk)
                    bar.advance(task, chunk.count(b"\n") if by_line else len(chunk))
                if by_line:
                    bar.update(task, completed=events)
    print(f"wrote {out} ({out.stat().st_size} bytes)", file=sys.stderr)  # noqa: ASYNC240
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import aiohttp

    try:
        return asyncio.run(_download(args))
    except (CliError, aiohttp.ClientError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_verify(args: argparse.Namespace) -> int:
    from protocol import liaison_verify

    argv = [args.file]
    if args.key:
        argv += ["--key", args.key]
    if args.anchors:
        argv += ["--anchors", args.anchors]
    return liaison_verify.main(argv)


async def _anchors(args: argparse.Namespace) -> int:
    import aiohttp

    url = (args.url or os.environ.get("LIAISON_URL") or DEFAULT_URL).rstrip("/")
    out = Path(args.output)
    after, count = _last_seq(out), 0
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {await _token(session, url, args)}"}
        with out.open("ab") as file:  # noqa: ASYNC230 - the CLI
            while True:
                page_url = f"{url}/api/v1/anchors?after_seq={after}&limit=1000"
                async with session.get(page_url, headers=headers) as resp:
                    page = await resp.json(content_type=None)
                    if resp.status != 200:
                        raise CliError(f"refused: {page.get('error', {}).get('message')}")
                for record in page["records"]:
                    file.write(orjson.dumps(record) + b"\n")
                    count += 1
                if page["next_after_seq"] is None:
                    break
                after = page["next_after_seq"]
    print(f"appended {count} anchor records to {out}", file=sys.stderr)
    return 0


def _last_seq(path: Path) -> int:
    """The seq of the last record already kept in ``path`` (0: none), to resume after it."""
    if not path.exists():
        return 0
    last = 0
    with path.open("rb") as file:
        for raw in file:
            if raw.strip():
                last = int(orjson.loads(raw)["seq"])
    return last


def cmd_anchors(args: argparse.Namespace) -> int:
    import aiohttp

    try:
        return asyncio.run(_anchors(args))
    except (CliError, aiohttp.ClientError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def key_store(settings: Settings) -> tuple[SecretStore, Callable[[], Any] | None]:
    """Where the node key lives for these settings, and what to close after."""
    from server.backends import NODE_KEY_FILE
    from server.storage import redis_keys as keys
    from server.storage.secret import FileSecret, RedisSecret

    if settings.redis_url:
        from server.storage.redis_log import RedisConfig, connect

        client = connect(RedisConfig(url=settings.redis_url, node_id="cli"))
        return RedisSecret(client, keys.NODE_KEY), client.aclose
    if not settings.data_dir.is_dir():
        raise CliError(f"no data directory {settings.data_dir}")
    return FileSecret(settings.data_dir / NODE_KEY_FILE), None


def node_key_command(settings: Settings) -> int:
    from server.services.anchors import NodeSigner

    async def run() -> int:
        store, close = key_store(settings)
        try:
            print((await NodeSigner.load(store)).public_hex)
        finally:
            if close is not None:
                await close()
        return 0

    try:
        return asyncio.run(run())
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _remote(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help=f"the server (LIAISON_URL; default {DEFAULT_URL})")
    p.add_argument("--user", help="log in as this user (password: LIAISON_PASSWORD, or asked)")
    p.add_argument("--token", help="an access token or API key instead (LIAISON_TOKEN)")


def add_export_parsers(
    sub: Any,
    data_dir: Callable[[argparse.ArgumentParser], None],
    settings_of: Callable[[argparse.Namespace], Settings],
) -> None:
    export = sub.add_parser(
        "export", help="download an incident (or a date range) as the user may see it"
    )
    export.add_argument("incident", nargs="?", help="the incident id (or --from/--to)")
    export.add_argument("--format", choices=("jsonl", "csv", "html", "pdf"), default="jsonl")
    export.add_argument("--from", dest="since", type=int, help="range start, ms since the epoch")
    export.add_argument("--to", dest="until", type=int, help="range end (exclusive), ms")
    export.add_argument("-o", "--output", help="file to write (default export.<format>)")
    export.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _remote(export)
    export.set_defaults(func=cmd_export)

    verify = sub.add_parser("verify", help="check a JSONL export offline: links, head, signature")
    verify.add_argument("file")
    verify.add_argument("--key", help="the server's public key (hex or a file): see node-key")
    verify.add_argument("--anchors", help="anchor records kept earlier (liaison anchors)")
    verify.set_defaults(func=cmd_verify)

    anchors = sub.add_parser("anchors", help="append the server's anchor log to a local file")
    anchors.add_argument("-o", "--output", default="anchors.jsonl", help="default anchors.jsonl")
    _remote(anchors)
    anchors.set_defaults(func=cmd_anchors)

    node_key = sub.add_parser("node-key", help="print the public key chain heads are signed with")
    node_key.add_argument("--redis-url", help="the deployment's Redis (LIAISON_REDIS_URL)")
    data_dir(node_key)
    node_key.set_defaults(func=lambda args: node_key_command(settings_of(args)))
