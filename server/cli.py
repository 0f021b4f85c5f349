"""The ``liaison`` command: serve, demo, organisations, users, bots' API keys, webhooks."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib.metadata
import logging
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from protocol.errors import ErrorCode, ProtocolError
from server import __version__, workers
from server.auth import TokenSigner
from server.backends import build_account_backends
from server.cli_export import add_export_parsers
from server.cli_retention import add_retention_parsers
from server.cli_storage import add_storage_parsers, prepare_layout
from server.cli_webhooks import add_webhook_parsers, webhook_command
from server.domain.expertise import check_tags
from server.domain.model import Org, Role
from server.domain.sharing import Agreement
from server.logs import configure, event
from server.services.accounts import Accounts, SessionGuard, SessionPolicy, cli_actor
from server.services.admin import create_user
from server.services.api_keys import ApiKeys, KeyRequest
from server.services.contacts import set_phone
from server.services.sharing_admin import FIELD_CLASSES, LABELS, PRECISIONS, SharingAdmin
from server.services.sharing_rules import SharingRules, now_ms
from server.settings import HELP, Settings, human_default
from server.storage import redis_connect
from server.storage.audit import AuditEntry, verify_records
from server.storage.directory import (
    Directory,
    DirectoryConflict,
    DirectoryStorage,
    SqliteDirectoryStorage,
)
from server.storage.redis_directory import RedisDirectoryStorage
from server.storage.sessions import POLL_S

#: How long a stopping server waits for HTTP requests still open once every
#: Socket.IO client was sent away (aiohttp's default is 60 s, twice systemd's
#: TimeoutStopSec=15s). The whole stop stays within about 5 s.
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
        "workers": getattr(args, "workers", None),
        "archive_dir": getattr(args, "archive_dir", None),
    }
    return Settings.from_env(overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure(settings.log_level, settings.log_format)
    group = workers.group_size()
    if not group and settings.workers != 1:
        return _supervise(settings)
    if not group and (refused := prepare_layout(settings)) is not None:
        return refused  # a worker's supervisor checked the layout once
    where = f"Redis {settings.redis_url}" if settings.redis_url else f"data in {settings.data_dir}"
    if not group:
        print(f"Liaison on http://{settings.host}:{settings.port} ({where})", flush=True)
    event(
        logging.getLogger("server"),
        logging.INFO,
        "server.start",
        "starting %s on %s:%d",
        _version(),
        settings.host,
        settings.port,
        version=_version(),
        host=settings.host,
        port=settings.port,
        backend="redis" if settings.redis_url else "sqlite",
    )
    from aiohttp import web  # the server's imports, only for the commands that serve

    from server import gc_tuning
    from server.app import create_app
    from server.transport.http_log import PathOnlyAccessLogger
    from server.transport.reuseport import shared_listener

    listen: dict[str, Any] = {"host": settings.host, "port": settings.port}
    if group:
        listen = {"sock": shared_listener(settings.host, settings.port, group)}
    gc_tuning.set_thresholds(settings.gc_young)
    app = create_app(settings)

    async def freeze_startup_objects(_: web.Application) -> None:
        gc_tuning.freeze_long_lived(settings.gc_young)  # seeded and migrated: ready

    app.on_startup.append(freeze_startup_objects)  # after every component's start
    web.run_app(
        app,
        **listen,
        print=workers.notify_ready if group else None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log_class=PathOnlyAccessLogger,
        keepalive_timeout=settings.http_header_timeout_s,
    )
    event(logging.getLogger("server"), logging.INFO, "shutdown.done", "shutdown: done")
    return 0


def _supervise(settings: Settings) -> int:
    """``--workers``: several nodes on one port of this host (server/workers.py)."""
    if not settings.redis_url:
        print(
            "error: --workers needs Redis (LIAISON_REDIS_URL): on the embedded default one"
            " process holds the data dir and fans out in memory",
            file=sys.stderr,
        )
        return 2
    if (refused := prepare_layout(settings)) is not None:
        return refused
    count = workers.worker_count(settings.workers)
    print(
        f"Liaison on http://{settings.host}:{settings.port} (Redis {settings.redis_url},"
        f" {count} workers)",
        flush=True,
    )
    supervisor = workers.Supervisor(
        workers.worker_argv(), count, workers.node_base(settings.node_id)
    )
    return supervisor.run()


def _with_app(settings: Settings, action: Callable[[Any], Awaitable[int]]) -> int:
    """Run ``action`` with a started (but not listening) app, for offline admin."""
    from aiohttp import web

    from server.app import COMPONENTS, create_app

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
        client = redis_connect.link(settings.redis_url) if settings.redis_url else None
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
            print(f"{org.id}\t{org.kind}\t{org.name}\t{org.default_label.value}")
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
    if args.role == Role.BOT.value and not args.password:
        # Bots authenticate with an API key (`liaison key create`): a password
        # they cannot use is random and never shown.
        password: str | None = secrets.token_urlsafe(24)
    else:
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
            ApiKeys(backends.api_keys, accounts)  # accounts.keys, for `liaison key`
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


def cmd_user_phone(args: argparse.Namespace) -> int:
    """Set (or with "" remove) a user's phone number: audited as ``user.set_phone``."""

    async def action(accounts: Accounts) -> int:
        user = accounts.directory.by_username(args.username)
        target = user.id if user is not None else args.username
        entry = AuditEntry(cli_actor(), "user.set_phone", target, "ok", "")
        await _audited(accounts, entry, lambda: set_phone(accounts.directory, target, args.phone))
        print(f"user {args.username}: phone {'set' if args.phone.strip() else 'removed'}")
        return 0

    return _accounts_action(args, action)


def _scope_arg(raw: str) -> str | list[str]:
    return "all" if raw == "all" else [part.strip() for part in raw.split(",") if part.strip()]


def cmd_key(args: argparse.Namespace) -> int:
    """create, list, revoke: bots' API keys (every action audited, as over REST).

    ``create`` prints the key alone on stdout (``BOT=$(liaison key create ...)``);
    it is shown this once.
    """

    async def action(accounts: Accounts) -> int:
        keys, actor = accounts.keys, cli_actor()
        assert isinstance(keys, ApiKeys)  # _accounts_action serves them
        if args.key == "create":
            ask = KeyRequest(
                username=args.username,
                name=args.name or f"{args.username} key",
                incidents=_scope_arg(args.incidents),
                commands=_scope_arg(args.commands),
                coordinator=args.coordinator,
            )
            key, token = await keys.create(actor, None, ask)
            if not _settings(args).redis_url:
                # A running embedded server reads the feed every POLL_S: once
                # printed, the key works there (Redis nodes hear it at once).
                await asyncio.sleep(POLL_S * 2)
            print(f"API key {key.id} (shown once; store it now):", file=sys.stderr)
            print(token)
        elif args.key == "revoke":
            key = await keys.revoke(actor, None, args.id)
            print(f"API key {key.id} of {key.user_id} revoked")
        else:
            for key in await keys.list(None):
                wire = key.to_wire()
                scope = wire["scope"]
                state = "revoked" if key.revoked_ms else "active"
                print(
                    f"{key.id}\t{key.user_id}\t{key.org_id}\t{state}\t{key.name}"
                    f"\tincidents={_listed(scope['incidents'])}\tcommands={_listed(scope['commands'])}"
                    f"\tcoordinator={'yes' if key.coordinator else 'no'}"
                    f"\tlast_used={_when(key.last_used_ms)}"
                )
        return 0

    return _accounts_action(args, action)


def cmd_webhook(args: argparse.Namespace) -> int:
    """add, list, remove: outbound webhook subscriptions (server/cli_webhooks.py)."""
    if _refused(args):
        return 2
    return webhook_command(args, _settings(args))


def _listed(value: str | list[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


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


def _sharing_action(
    args: argparse.Namespace, action: Callable[[SharingAdmin], Awaitable[int]]
) -> int:
    """Run ``action`` on the agreements, directory and audit log of the data dir (or Redis).

    Safe next to a running server, like the account commands: an embedded
    server sees a new or revoked agreement within 0.2 s (it polls the
    database's change counter), Redis nodes at once (pub/sub); a default
    label within a second (the directory's change token).
    """
    settings = _settings(args)
    if _refused(args):
        return 2

    async def run() -> int:
        backends = build_account_backends(settings)
        directory = Directory(backends.directory)
        rules = SharingRules(backends.agreements)
        await directory.start()
        await backends.start()
        await rules.start()
        try:
            return await action(SharingAdmin(rules, directory, backends.audit))
        except ProtocolError as exc:
            field = str((exc.detail or {}).get("field", ""))
            flag = CLI_FLAGS.get(field, f"--{field}")
            print(f"error: {exc}" + (f" ({flag})" if field else ""), file=sys.stderr)
            return 1
        finally:
            await rules.close()
            await backends.close()
            await directory.close()

    return asyncio.run(run())


#: The flag of ``liaison agreement add`` that carries each field of the request.
CLI_FLAGS = {"recipients": "--to", "valid_until_ms": "--until", "owner": "OWNER"}


def _until_ms(raw: str | None) -> int | None:
    """``--until``: an ISO 8601 date or date and time; without an offset, UTC."""
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ProtocolError(
            ErrorCode.INVALID, f"--until {raw!r}: not an ISO 8601 date", {"field": "until"}
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _csv(raw: str | None) -> list[str] | None:
    return None if raw is None else [item.strip() for item in raw.split(",") if item.strip()]


def _show_agreement(agreement: Agreement, now: int) -> str:
    """One line: id, who to whom, state, and what it shares."""
    state = "in force" if agreement.in_force(now) else "expired"
    if agreement.revoked_ms is not None:
        state = f"revoked by {agreement.revoked_by}"
    until = agreement.valid_until_ms
    wire = agreement.to_wire()
    return "\t".join(
        [
            agreement.id,
            f"{agreement.owner} -> {','.join(agreement.recipients)}",
            state,
            "fields=" + (",".join(wire["fields"]) or "-") + f" position={wire['position']}",
            "kinds=" + (",".join(agreement.kinds) or "*"),
            "categories=" + (",".join(agreement.categories or ()) or "*"),
            "history=" + ("yes" if agreement.history else "no"),
            "until=" + (datetime.fromtimestamp(until / 1000, UTC).isoformat() if until else "-"),
        ]
    )


def cmd_agreement_add(args: argparse.Namespace) -> int:
    async def action(admin: SharingAdmin) -> int:
        body: dict[str, Any] = {
            "owner": args.owner,
            "recipients": args.to,
            "kinds": _csv(args.kinds) or [],
            "fields": _csv(args.fields) or [],
            "position": args.position,
            "categories": _csv(args.categories),
            "history": args.history,
            "valid_until_ms": _until_ms(args.until),
            "note": args.note or "",
        }
        agreement = await admin.create(None, cli_actor(), body)
        print(f"agreement {agreement.id} added")
        print(_show_agreement(agreement, now_ms()))
        return 0

    return _sharing_action(args, action)


def cmd_agreement_list(args: argparse.Namespace) -> int:
    async def action(admin: SharingAdmin) -> int:
        now = now_ms()
        for agreement in sorted(admin.rules.all(), key=lambda a: (a.valid_from_ms, a.id)):
            if args.org and args.org != agreement.owner and args.org not in agreement.recipients:
                continue
            print(_show_agreement(agreement, now))
        return 0

    return _sharing_action(args, action)


def cmd_agreement_revoke(args: argparse.Namespace) -> int:
    async def action(admin: SharingAdmin) -> int:
        agreement, already = await admin.revoke(None, cli_actor(), args.id)
        by = f" already, by {agreement.revoked_by}" if already else ""
        print(f"agreement {agreement.id} revoked{by}")
        return 0

    return _sharing_action(args, action)


def cmd_org_set_label(args: argparse.Namespace) -> int:
    async def action(admin: SharingAdmin) -> int:
        org = await admin.set_default_label(
            None, cli_actor(), args.id, {"default_label": args.label}
        )
        print(f"organisation {org.id}: default label {org.default_label.value}")
        return 0

    return _sharing_action(args, action)


def cmd_tags(args: argparse.Namespace) -> int:
    """Set an organisation's or a user's expertise tags (SPEC 27.1), audited."""

    async def action(accounts: Accounts) -> int:
        directory = accounts.directory
        target = args.id if args.kind == "org" else f"u_{args.id}"
        entry = AuditEntry(cli_actor(), f"{args.kind}.tags", target, "ok", "")
        try:
            tags = check_tags(args.tags)
        except ProtocolError as err:
            await accounts.record(replace(entry, outcome=err.code.code))
            print(f"error: {err.message}", file=sys.stderr)
            return 2
        entry = replace(entry, detail={"tags": list(tags)})
        org = directory.org(target) if args.kind == "org" else None
        user = directory.users.get(target) if args.kind == "user" else None
        if org is None and (user is None or user.deleted):
            await accounts.record(replace(entry, outcome=ErrorCode.NOT_FOUND.code))
            print(f"error: no {args.kind} {args.id!r}", file=sys.stderr)
            return 1
        if org is not None:
            await directory.update_org(replace(org, tags=tags))
        elif user is not None:
            await directory.update_user(replace(user, tags=tags))
        await accounts.record(entry)
        print(f"{args.kind} {args.id}: tags {' '.join(tags) or '(none)'}")
        return 0

    return _accounts_action(args, action)


def _agreement_parsers(sub: Any, data_dir: Callable[[argparse.ArgumentParser], None]) -> None:
    agreement = sub.add_parser(
        "agreement", help="sharing agreements between organisations"
    ).add_subparsers(dest="agreement", required=True)
    add = agreement.add_parser(
        "add", help="OWNER shares protected fields of its events with other organisations"
    )
    add.add_argument("owner", help="the organisation whose data is shared")
    add.add_argument(
        "--to", action="append", required=True, help="a recipient organisation (repeatable)"
    )
    add.add_argument("--fields", help=f"comma-separated: {', '.join(FIELD_CLASSES)}")
    add.add_argument(
        "--position", choices=PRECISIONS, default="coarse", help="precision of a shared position"
    )
    add.add_argument("--kinds", help="comma-separated event types or prefixes (default: all)")
    add.add_argument("--categories", help="comma-separated incident categories (default: all)")
    add.add_argument(
        "--history", action="store_true", help="a recipient who joins later sees earlier events"
    )
    add.add_argument("--until", help="ISO 8601 date or time it ends (UTC without an offset)")
    add.add_argument("--note", help="why, for the record")
    data_dir(add)
    add.set_defaults(func=cmd_agreement_add)
    listing = agreement.add_parser("list", help="list agreements, revoked and expired ones too")
    listing.add_argument("--org", help="only those this organisation owns or receives")
    data_dir(listing)
    listing.set_defaults(func=cmd_agreement_list)
    revoke = agreement.add_parser("revoke", help="revoke an agreement (the record stays)")
    revoke.add_argument("id")
    data_dir(revoke)
    revoke.set_defaults(func=cmd_agreement_revoke)


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
    serve.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port, one node each, Redis mode; 0: one per core"
        " (LIAISON_WORKERS)",
    )
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
    org_label = org.add_parser("set-label", help="set an organisation's default TLP label")
    org_label.add_argument("id")
    org_label.add_argument("label", choices=LABELS)
    data_dir(org_label)
    org_label.set_defaults(func=cmd_org_set_label)
    tags = sub.add_parser("tags", help="set expertise tags of an organisation or a user")
    tags.add_argument("kind", choices=("org", "user"))
    tags.add_argument("id", help="organisation id, or username")
    tags.add_argument("tags", nargs="*", help="e.g. first_aid lang:ar (none: clear them)")
    data_dir(tags)
    tags.set_defaults(func=cmd_tags)
    _agreement_parsers(sub, data_dir)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user", required=True)
    user_add = user.add_parser("add", help="add a user or bot")
    user_add.add_argument("username")
    user_add.add_argument("--org", required=True)
    user_add.add_argument("--role", required=True, choices=[r.value for r in Role])
    user_add.add_argument("--name")
    user_add.add_argument(
        "--password", help="prompted for if absent (not for bots: they use API keys)"
    )
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
    key = sub.add_parser("key", help="bots' API keys").add_subparsers(dest="key", required=True)
    key_create = key.add_parser(
        "create", help="create an API key for a bot and print it (shown once)"
    )
    key_create.add_argument("username", help="the bot (a user with the role bot)")
    key_create.add_argument("--name", help="what the key is for (default: <username> key)")
    key_create.add_argument(
        "--incidents", default="all", help="'all' (default) or incident ids, comma-separated"
    )
    key_create.add_argument(
        "--commands",
        default="all",
        help="'all' (default) or write command types, comma-separated (message.post,...)",
    )
    key_create.add_argument(
        "--coordinator", action="store_true", help="the bot may open and run incidents"
    )
    key_list = key.add_parser("list", help="list API keys, with their scope and last use")
    key_revoke = key.add_parser("revoke", help="revoke an API key: its bot's sockets close")
    key_revoke.add_argument("id", help="the key's id (the hex after lk_)")
    for key_cmd in (key_create, key_list, key_revoke):
        data_dir(key_cmd)
        key_cmd.set_defaults(func=cmd_key)
    add_webhook_parsers(sub, data_dir, cmd_webhook)
    add_storage_parsers(sub, _settings)
    add_export_parsers(sub, data_dir, _settings)
    add_retention_parsers(sub)
    user_phone = user.add_parser(
        "set-phone", help="set a user's phone number (a liaison's tap-to-call); '' removes it"
    )
    user_phone.add_argument("username")
    user_phone.add_argument("phone")
    data_dir(user_phone)
    user_phone.set_defaults(func=cmd_user_phone)
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
