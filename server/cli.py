"""The ``liaison`` command: serve, demo, organisations and users."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib.metadata
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web

from protocol.errors import ErrorCode, ProtocolError
from server import __version__
from server.app import COMPONENTS, create_app
from server.auth import TokenSigner
from server.backends import build_account_backends
from server.domain.model import Org, Role
from server.services.accounts import Accounts, SessionGuard, SessionPolicy, cli_actor
from server.services.admin import create_user
from server.settings import HELP, Settings, human_default
from server.storage.audit import AuditEntry, verify_records
from server.storage.directory import (
    Directory,
    DirectoryConflict,
    DirectoryStorage,
    SqliteDirectoryStorage,
)
from server.storage.redis_directory import RedisDirectoryStorage
from server.transport.http_log import PathOnlyAccessLogger, redact_log_output

#: How long a stopping server waits for HTTP requests still open once every
#: Socket.IO client was sent away (aiohttp's default is 60 s, twice systemd's
#: TimeoutStopSec=30s). The whole stop stays within about 5 s.
SHUTDOWN_TIMEOUT_S = 2.0

SETTINGS_HELP = "\n".join(
    f"  LIAISON_{f.name.upper()}={human_default(f.name)}\n      {HELP.get(f.name, '')}"
    for f in fields(Settings)
)


def _version() -> str:
    try:
        return importlib.metadata.version("liaison")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return __version__


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "data_dir": getattr(args, "data_dir", None),
        "demo": True if getattr(args, "demo", False) else None,
        "redis_url": getattr(args, "redis_url", None),
        "node_id": getattr(args, "node_id", None),
    }
    return Settings.from_env(overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    redact_log_output()
    where = f"Redis {settings.redis_url}" if settings.redis_url else f"data in {settings.data_dir}"
    print(f"Liaison on http://{settings.host}:{settings.port} ({where})", flush=True)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log_class=PathOnlyAccessLogger,
        keepalive_timeout=settings.http_header_timeout_s,
    )
    logging.getLogger("server").info("shutdown: done")
    return 0


def _with_app(settings: Settings, action: Callable[[Any], Awaitable[int]]) -> int:
    """Run ``action`` with a started (but not listening) app, for offline admin."""

    async def run() -> int:
        app = create_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            return await action(app[COMPONENTS])
        finally:
            await runner.cleanup()

    return asyncio.run(run())


def cmd_demo(args: argparse.Namespace) -> int:
    settings = Settings.from_env({"data_dir": args.data_dir, "demo": True})
    return _with_app(settings, lambda _: asyncio.sleep(0, 0))


DIRECTORY_DB = "directory.db"


def _missing_database(settings: Settings, init: bool) -> str | None:
    """Why the admin commands must not touch this data dir, or None.

    A mistyped --data-dir must not quietly become a new, empty database that
    no server reads: only ``--init`` (or ``liaison serve``) creates one.
    """
    if settings.redis_url or init or (settings.data_dir / DIRECTORY_DB).exists():
        return None
    return (
        f"error: {settings.data_dir.resolve()} holds no Liaison database ({DIRECTORY_DB}).\n"
        "Point --data-dir (or LIAISON_DATA_DIR) at the server's data directory,"
        " or pass --init to create a new one there."
    )


def _refused(args: argparse.Namespace) -> bool:
    """Print why the data dir is refused, if it is."""
    refusal = _missing_database(_settings(args), getattr(args, "init", False))
    if refusal is not None:
        print(refusal, file=sys.stderr)
    return refusal is not None


def _directory_action(
    args: argparse.Namespace, action: Callable[[Directory], Awaitable[int]]
) -> int:
    settings = _settings(args)
    if _refused(args):
        return 2

    async def run() -> int:
        client = aioredis.Redis.from_url(settings.redis_url) if settings.redis_url else None
        storage: DirectoryStorage = (
            RedisDirectoryStorage(client)
            if client is not None
            else SqliteDirectoryStorage(settings.data_dir / DIRECTORY_DB)
        )
        directory = Directory(storage)
        await directory.start()
        try:
            return await action(directory)
        except (ProtocolError, DirectoryConflict) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            await directory.close()
            if client is not None:
                await client.aclose()

    return asyncio.run(run())


async def _audited(
    accounts: Accounts, entry: AuditEntry, step: Callable[[], Awaitable[Any]]
) -> Any:
    """Run an admin action and record it, with the error code it ended with if it failed."""
    try:
        result = await step()
    except ProtocolError as err:
        await accounts.record(replace(entry, outcome=err.code.code))
        raise
    except DirectoryConflict:
        await accounts.record(replace(entry, outcome=ErrorCode.CONFLICT.code))
        raise
    await accounts.record(entry)
    return result


def cmd_org_add(args: argparse.Namespace) -> int:
    """Add an organisation: audited as ``org.create``, like POST /api/v1/orgs."""

    async def action(accounts: Accounts) -> int:
        entry = AuditEntry(cli_actor(), "org.create", args.id, "ok", "", {"kind": args.kind})
        org = Org(args.id, args.name, args.kind)
        await _audited(accounts, entry, lambda: accounts.directory.add_org(org))
        print(f"organisation {args.id} added")
        return 0

    return _accounts_action(args, action)


def cmd_org_list(args: argparse.Namespace) -> int:
    async def action(directory: Directory) -> int:
        for org in directory.orgs.values():
            print(f"{org.id}\t{org.kind}\t{org.name}")
        return 0

    return _directory_action(args, action)


def _ask(prompt: str) -> str | None:
    """A password from the terminal (or stdin); None, said why, if there is none."""
    try:
        return getpass.getpass(prompt)
    except EOFError:
        print("\nerror: no password given (pass --password, or type it)", file=sys.stderr)
        return None


def cmd_user_add(args: argparse.Namespace) -> int:
    """Add a user or bot: audited as ``user.create``, like POST /api/v1/users."""
    if _refused(args):  # before asking for a password
        return 2
    password = args.password or _ask(f"password for {args.username}: ")
    if password is None:
        return 2

    async def action(accounts: Accounts) -> int:
        detail = {"org": args.org, "role": args.role}
        entry = AuditEntry(cli_actor(), "user.create", "u_" + args.username, "ok", "", detail)
        user = await _audited(
            accounts,
            entry,
            lambda: create_user(
                accounts.directory,
                username=args.username,
                org=args.org,
                name=args.name or args.username,
                role=args.role,
                password=password,
            ),
        )
        print(f"user {user.username} ({user.role}) added to {user.org_id}")
        return 0

    return _accounts_action(args, action)


def cmd_user_list(args: argparse.Namespace) -> int:
    async def action(directory: Directory) -> int:
        for user in directory.users.values():
            if user.deleted:
                continue
            disabled = "\tdisabled" if user.disabled else ""
            print(f"{user.username}\t{user.org_id}\t{user.role}\t{user.name}{disabled}")
        return 0

    return _directory_action(args, action)


def _accounts_action(args: argparse.Namespace, action: Callable[[Accounts], Awaitable[int]]) -> int:
    """Run ``action`` on the account backends of the data dir (or Redis).

    Safe next to a running server: it writes the directory and session store
    only. Every node learns of the change within about a second: the embedded
    server polls the session store's revocation table, Redis nodes are told
    over pub/sub.
    """
    settings = _settings(args)
    if _refused(args):
        return 2

    async def run() -> int:
        backends = build_account_backends(settings)
        directory = Directory(backends.directory)
        await directory.start()
        await backends.start()
        try:
            accounts = Accounts(
                directory=directory,
                store=backends.sessions,
                audit=backends.audit,
                signer=TokenSigner(settings.token_ttl_s),
                guard=SessionGuard(backends.sessions, directory, settings.token_ttl_s),
                policy=SessionPolicy(settings.refresh_ttl_s, settings.idle_timeout_s),
            )
            return await action(accounts)
        except (ProtocolError, DirectoryConflict) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            await backends.close()
            await directory.close()

    return asyncio.run(run())


def _user_id(accounts: Accounts, username: str) -> str:
    user = accounts.directory.by_username(username)
    if user is None or user.deleted:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no user {username!r}")
    return user.id


#: The audit action of each ``liaison user`` lifecycle command (as over REST).
_LIFECYCLE_ACTIONS = {
    "disable": "disable",
    "enable": "enable",
    "revoke": "revoke_sessions",
    "delete": "delete",
    "reset-password": "reset_password",
}


def cmd_user_lifecycle(args: argparse.Namespace) -> int:
    """disable, enable, revoke, delete: one audited action on one user."""
    password = ""
    if args.user == "reset-password":
        if _refused(args):
            return 2
        password = args.password or _ask(f"new password for {args.username}: ") or ""
        if not password:
            return 2

    async def action(accounts: Accounts) -> int:
        actor = cli_actor()
        try:
            user_id = _user_id(accounts, args.username)
        except ProtocolError as err:  # refused, and recorded as REST records it
            action = f"user.{_LIFECYCLE_ACTIONS[args.user]}"
            await accounts.record(AuditEntry(actor, action, args.username, err.code.code))
            raise
        steps = {
            "disable": lambda: accounts.disable(actor, user_id),
            "enable": lambda: accounts.enable(actor, user_id),
            "revoke": lambda: accounts.revoke(actor, user_id),
            "delete": lambda: accounts.delete(actor, user_id),
            "reset-password": lambda: accounts.reset_password(actor, user_id, password),
        }
        await steps[args.user]()
        print(f"user {args.username}: {args.user} done")
        return 0

    return _accounts_action(args, action)


def cmd_audit(args: argparse.Namespace) -> int:
    """Export the audit log as JSON lines (``export``) or check its chain (``verify``).

    Reading it from the CLI is itself recorded, as over REST.
    """

    async def action(accounts: Accounts) -> int:
        records, after = [], 0
        while page := await accounts.audit.read(after, 1000):
            records += [r.to_wire() for r in page]
            after = page[-1].seq
        await accounts.record(AuditEntry(cli_actor(), f"audit.{args.audit}", "", "ok"))
        bad = verify_records(records)
        if args.audit == "export":
            for record in records:
                sys.stdout.write(orjson.dumps(record).decode() + "\n")
        if bad is not None:
            print(f"error: the audit log does not chain at seq {bad}", file=sys.stderr)
            return 1
        if args.audit == "verify":
            print(f"audit log: {len(records)} records, chain intact")
        return 0

    return _accounts_action(args, action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liaison",
        description="Liaison: real-time joint incident coordination server.",
        epilog="Settings, with their defaults (flags override environment variables):\n"
        + SETTINGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"liaison {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p: argparse.ArgumentParser, init: bool = False) -> None:
        p.add_argument("--data-dir", type=Path, help="data directory (LIAISON_DATA_DIR)")
        if init:
            p.add_argument(
                "--init",
                action="store_true",
                help="create a new database if the data directory holds none",
            )

    serve = sub.add_parser("serve", help="run the server on the embedded default")
    serve.add_argument("--host", help="listen address (LIAISON_HOST)")
    serve.add_argument("--port", type=int, help="listen port (LIAISON_PORT)")
    serve.add_argument("--demo", action="store_true", help="seed demo data at start")
    serve.add_argument(
        "--redis-url", help="run as one node of many on this Redis (LIAISON_REDIS_URL)"
    )
    serve.add_argument("--node-id", help="this node's name (LIAISON_NODE_ID)")
    data_dir(serve)
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="seed demo organisations, users and an incident")
    data_dir(demo)
    demo.set_defaults(func=cmd_demo)

    org = sub.add_parser("org", help="manage organisations").add_subparsers(
        dest="org", required=True
    )
    org_add = org.add_parser("add", help="add an organisation")
    org_add.add_argument("id")
    org_add.add_argument("name")
    org_add.add_argument("--kind", default="ngo", help="police, ngo, ... (default ngo)")
    data_dir(org_add, init=True)
    org_add.set_defaults(func=cmd_org_add)
    org_list = org.add_parser("list", help="list organisations")
    data_dir(org_list)
    org_list.set_defaults(func=cmd_org_list)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user", required=True)
    user_add = user.add_parser("add", help="add a user or bot")
    user_add.add_argument("username")
    user_add.add_argument("--org", required=True)
    user_add.add_argument("--role", required=True, choices=[r.value for r in Role])
    user_add.add_argument("--name")
    user_add.add_argument("--password", help="prompted for if absent")
    data_dir(user_add, init=True)
    user_add.set_defaults(func=cmd_user_add)
    lifecycle = {
        "disable": "disable a user: every session ends and live sockets close",
        "enable": "enable a disabled user again (they log in anew)",
        "revoke": "end every session of a user (they log in again)",
        "delete": "delete a user (kept as a tombstone: authorship in the logs stays)",
        "reset-password": "set a user's password; every session of theirs ends",
    }
    for name, text in lifecycle.items():
        sub_parser = user.add_parser(name, help=text)
        sub_parser.add_argument("username")
        if name == "reset-password":
            sub_parser.add_argument("--password", help="prompted for if absent")
        data_dir(sub_parser)
        sub_parser.set_defaults(func=cmd_user_lifecycle)
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit", required=True
    )
    for name, text in (
        ("export", "print every record as a JSON line (the chain is checked too)"),
        ("verify", "check the hash chain of the whole log"),
    ):
        audit_cmd = audit.add_parser(name, help=text)
        data_dir(audit_cmd)
        audit_cmd.set_defaults(func=cmd_audit)
    user_list = user.add_parser("list", help="list users")
    data_dir(user_list)
    user_list.set_defaults(func=cmd_user_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Whatever the caller's umask, files this process creates (SQLite's own
    # journals included) are for its user alone; storage/files.py sets the
    # modes explicitly too, for code that runs without this entry point.
    os.umask(0o077)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
