"""``liaison retention ...``: policies, legal holds, runs and archives (SPEC section 25).

Like ``liaison export``, these talk to a running server over REST as the
user who logs in (a deployment administrator: ``--user admin``): the server
owns the storage (the embedded one is one process) and audits every change.

    liaison retention run [--dry-run]
    liaison retention policies
    liaison retention policy-set ID --archive-after-days N [--purge-after-years Y]
                                    [--category C ...] [--org O ...] [--note TEXT]
    liaison retention policy-delete ID
    liaison retention holds | hold INCIDENT --reason TEXT | release INCIDENT
    liaison retention archived [--state archived|purged]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from typing import Any
from urllib.parse import quote

import orjson

from server.cli_export import DEFAULT_URL, CliError, _remote, _token

DAYS_PER_YEAR = 365.25


def _policy_body(args: argparse.Namespace) -> dict[str, Any]:
    purge = args.purge_after_days
    if args.purge_after_years is not None:
        purge = math.ceil(args.purge_after_years * DAYS_PER_YEAR)
    return {
        "archive_after_days": args.archive_after_days,
        "purge_after_days": purge,
        "categories": args.category or [],
        "orgs": args.org or [],
        "note": args.note or "",
    }


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    """(method, path, body) of the command."""
    match args.retention:
        case "run":
            return "POST", f"/api/v1/retention/run?dry_run={int(args.dry_run)}", None
        case "policies":
            return "GET", "/api/v1/retention/policies", None
        case "policy-set":
            return "PUT", f"/api/v1/retention/policies/{quote(args.id)}", _policy_body(args)
        case "policy-delete":
            return "DELETE", f"/api/v1/retention/policies/{quote(args.id)}", None
        case "holds":
            return "GET", "/api/v1/retention/holds", None
        case "hold":
            body = {"reason": args.reason}
            return "PUT", f"/api/v1/retention/holds/{quote(args.incident)}", body
        case "release":
            return "DELETE", f"/api/v1/retention/holds/{quote(args.incident)}", None
        case _:
            state = f"&state={args.state}" if args.state else ""
            return "GET", f"/api/v1/retention/archived?limit=500{state}", None


async def _call(args: argparse.Namespace) -> Any:
    import aiohttp

    url = (args.url or os.environ.get("LIAISON_URL") or DEFAULT_URL).rstrip("/")
    method, path, body = _request(args)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=3600)  # a run may take long
    async with aiohttp.ClientSession(timeout=timeout) as session:
        headers = {"Authorization": f"Bearer {await _token(session, url, args)}"}
        async with session.request(method, url + path, headers=headers, json=body) as resp:
            answer = await resp.json(content_type=None)
            if resp.status != 200:
                error = answer.get("error", {}) if isinstance(answer, dict) else {}
                raise CliError(f"refused ({error.get('code')}): {error.get('message')}")
            return answer


def _print_run(report: dict[str, Any]) -> None:
    verb = "would " if report["dry_run"] else ""
    for item in report["archived"]:
        print(f"{verb}archive {item['incident']} ({item['seq']} events, policy {item['policy']})")
    for item in report["purged"]:
        print(f"{verb}purge the archive of {item['incident']} ({item['file']})")
    for item in report["skipped"]:
        print(f"skip {item['action']} of {item['incident']}: {item['reason']}")
    for item in report["failed"]:
        print(f"FAILED {item['incident']}: {item['error']}")
    counts = {k: len(report[k]) for k in ("archived", "purged", "skipped", "failed")}
    print(
        ("dry run: " if report["dry_run"] else "")
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


def cmd_retention(args: argparse.Namespace) -> int:
    import aiohttp

    try:
        answer = asyncio.run(_call(args))
    except (CliError, aiohttp.ClientError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.retention == "run":
        _print_run(answer)
        return 1 if answer["failed"] else 0
    sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def add_retention_parsers(sub: Any) -> None:
    retention = sub.add_parser(
        "retention", help="retention policies, legal holds, archiving and purging (via REST)"
    ).add_subparsers(dest="retention", required=True)
    run = retention.add_parser("run", help="archive and purge what the policies say is due")
    run.add_argument(
        "--dry-run", action="store_true", help="print what it would do, change nothing"
    )
    policies = retention.add_parser("policies", help="list the retention policies")
    put = retention.add_parser("policy-set", help="create or replace a policy")
    put.add_argument("id", help="the policy id ('default': for incidents no other matches)")
    put.add_argument(
        "--archive-after-days", type=int, required=True, help="days closed, then archive"
    )
    purge = put.add_mutually_exclusive_group()
    purge.add_argument("--purge-after-days", type=int, help="days archived, then purge the file")
    purge.add_argument("--purge-after-years", type=float, help="the same in years (365.25 days)")
    put.add_argument("--category", action="append", help="match this category (repeatable)")
    put.add_argument("--org", action="append", help="match incidents this org is in (repeatable)")
    put.add_argument("--note", help="why (kept with the policy, e.g. the regulation)")
    delete = retention.add_parser("policy-delete", help="delete a policy")
    delete.add_argument("id")
    holds = retention.add_parser("holds", help="list legal holds")
    hold = retention.add_parser("hold", help="put an incident under legal hold (never purged)")
    hold.add_argument("incident")
    hold.add_argument("--reason", required=True, help="why (audited)")
    release = retention.add_parser("release", help="lift a legal hold")
    release.add_argument("incident")
    archived = retention.add_parser("archived", help="list archived incidents and purges")
    archived.add_argument("--state", choices=("archived", "purged"))
    for p in (run, policies, put, delete, holds, hold, release, archived):
        _remote(p)
        p.set_defaults(func=cmd_retention)
