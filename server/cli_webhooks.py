"""``liaison webhook add|list|remove``: outbound webhook subscriptions from the command line.

Safe next to a running server, like the other admin commands: the servers
read the subscriptions every ``LIAISON_WEBHOOK_POLL_S``, so a new one starts
delivering within that and a removed one stops. Every change is audited
(actor ``cli:<os user>``), as over REST.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from protocol.errors import ProtocolError
from server.backends import build_account_backends
from server.services.accounts import cli_actor
from server.services.webhooks import Webhooks, parse_request
from server.settings import Settings
from server.storage.audit import AuditEntry
from server.storage.directory import Directory


def _csv(raw: str | None) -> list[str] | str:
    return "all" if raw in (None, "all") else [p.strip() for p in str(raw).split(",") if p.strip()]


def run_webhook_action(
    settings: Settings, action: Callable[[Webhooks, Directory], Awaitable[int]]
) -> int:
    async def run() -> int:
        backends = build_account_backends(settings)
        store = backends.webhooks
        assert store is not None, "every backend set has a webhook store"
        directory = Directory(backends.directory)
        await directory.start()
        await backends.start()
        await store.open()

        async def record(entry: AuditEntry) -> None:
            await backends.audit.append(entry, int(time.time() * 1000))

        try:
            return await action(Webhooks(store, record), directory)
        except ProtocolError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            await store.close()
            await backends.close()
            await directory.close()

    return asyncio.run(run())


def webhook_command(args: argparse.Namespace, settings: Settings) -> int:
    """add prints the id, then the secret alone on the last line (shown this once)."""

    async def action(webhooks: Webhooks, directory: Directory) -> int:
        actor = cli_actor()
        if args.webhook == "add":
            if directory.org(args.org) is None:
                print(f"error: no organisation {args.org!r}", file=sys.stderr)
                return 1
            body: dict[str, Any] = {
                "url": args.url,
                "incidents": _csv(args.incidents),
                "categories": _csv(args.categories),
                "types": _csv(args.types),
                "modes": None if args.modes is None else _csv(args.modes),
                "description": args.description or "",
            }
            sub, secret = await webhooks.create(actor, args.org, parse_request(body))
            print(f"webhook {sub.id} of {sub.org_id} added (secret shown once):", file=sys.stderr)
            print(sub.id)
            print(secret)
        elif args.webhook == "remove":
            await webhooks.delete(actor, None, args.id)
            print(f"webhook {args.id} removed")
        else:
            for sub in await webhooks.listed(args.org):
                wire = sub.to_wire()
                filters = " ".join(
                    f"{k}={v if isinstance(v, str) else ','.join(v)}"
                    for k, v in wire["filters"].items()
                )
                state = "enabled" if sub.state.enabled else "disabled"
                print(f"{sub.id}\t{sub.org_id}\t{state}\t{sub.url}\t{filters}")
        return 0

    return run_webhook_action(settings, action)


def add_webhook_parsers(
    sub: Any, data_dir: Callable[[argparse.ArgumentParser], None], func: Callable[..., int]
) -> None:
    webhook = sub.add_parser("webhook", help="outbound webhook subscriptions").add_subparsers(
        dest="webhook", required=True
    )
    add = webhook.add_parser("add", help="subscribe a URL to an organisation's events")
    add.add_argument("url", help="http(s) URL the events are POSTed to")
    add.add_argument("--org", required=True, help="the organisation whose view is delivered")
    add.add_argument("--incidents", help="'all' (default) or incident ids, comma-separated")
    add.add_argument("--categories", help="'all' (default) or incident categories")
    add.add_argument("--types", help="'all' (default) or event types (restricted: placeholders)")
    add.add_argument(
        "--modes", help="'actual' (default), 'all', or incident modes: actual,exercise,test"
    )
    add.add_argument("--description", help="what the subscription is for")
    listing = webhook.add_parser("list", help="list subscriptions and whether they are enabled")
    listing.add_argument("--org", help="only this organisation's")
    remove = webhook.add_parser("remove", help="delete a subscription (delivery stops)")
    remove.add_argument("id")
    for cmd in (add, listing, remove):
        data_dir(cmd)
        cmd.set_defaults(func=func)
