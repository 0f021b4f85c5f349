"""Administration shared by the CLI and the REST API: users, bootstrap, demo data."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from server.auth import hash_password
from server.domain.model import Org, Role
from server.services.commands import CommandService
from server.services.projections import Projections
from server.services.sharing_admin import SharingAdmin
from server.storage.directory import Directory, DirectoryConflict, User

log = logging.getLogger(__name__)

ADMIN_ORG = Org(id="admin", name="Liaison administration", kind="system")


async def create_user(
    directory: Directory, *, username: str, org: str, name: str, role: str, password: str
) -> User:
    if len(password) < 8:
        raise ProtocolError(ErrorCode.INVALID, "passwords need at least 8 characters")
    password_hash = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
    user = User(
        id="u_" + username,
        username=username,
        org_id=org,
        name=name,
        role=Role(role),
        password_hash=password_hash,
        disabled=False,
    )
    try:
        return await directory.add_user(user)
    except DirectoryConflict as exc:
        raise ProtocolError(ErrorCode.CONFLICT, str(exc)) from exc


async def ensure_admin(directory: Directory, password: str) -> str | None:
    """Create the first admin if there is none; return a generated password to print once.

    Several nodes may start at once on one Redis: whoever loses the race finds
    the admin (or the organisation) taken and leaves it as it is.
    """
    if directory.by_username("admin") is not None:
        return None
    generated = None if password else secrets.token_urlsafe(12)
    try:
        if directory.org(ADMIN_ORG.id) is None:
            await directory.add_org(ADMIN_ORG)
        await create_user(
            directory,
            username="admin",
            org=ADMIN_ORG.id,
            name="Administrator",
            role="admin",
            password=password or generated or "",
        )
    except (DirectoryConflict, ProtocolError):
        await directory.reload()
        return None
    return generated


DEMO_ORGS = (
    Org(id="metro-police", name="Metro Police Dispatch", kind="police"),
    Org(
        id="harbour-shelter",
        name="Harbour Street Shelter",
        kind="ngo",
        tags=("shelter", "homelessness", "lang:ar"),
    ),
)
#: username, org, display name, role. Every demo password is "liaison-demo",
#: but the bot's: bots authenticate with an API key (``liaison key create
#: cad-bot``), so its password is random and never shown.
DEMO_USERS = (
    ("dispatch", "metro-police", "Dana Dispatcher", "dispatcher"),
    ("officer", "metro-police", "Omar Officer", "responder"),
    ("sergeant", "metro-police", "Sam Supervisor", "supervisor"),
    ("outreach", "harbour-shelter", "Nia Outreach", "responder"),
    ("shelter-lead", "harbour-shelter", "Lee Coordinator", "dispatcher"),
    ("shelter-super", "harbour-shelter", "Ray Supervisor", "supervisor"),
    ("cad-bot", "metro-police", "CAD integration", "bot"),
)
DEMO_PASSWORD = "liaison-demo"  # noqa: S105 - published demo credentials


#: The demo's agreements, both ways between the police and the shelter: names,
#: phone numbers and exact positions of "welfare" incidents, with the history
#: for a newcomer, so the demo shows people and positions across organisations.
DEMO_AGREEMENTS = {
    "demo-police-to-shelter": ("metro-police", "harbour-shelter"),
    "demo-shelter-to-police": ("harbour-shelter", "metro-police"),
}
DEMO_ACTOR = "system:demo"


def demo_agreement_body(owner: str, recipient: str) -> dict[str, Any]:
    """The admin API request that creates one of the demo's agreements."""
    return {
        "owner": owner,
        "recipients": [recipient],
        "fields": ["name", "phone", "position"],
        "position": "exact",
        "categories": ["welfare"],
        "history": True,
        "note": "Demo: joint welfare incidents.",
    }


async def seed_demo_agreements(sharing: SharingAdmin) -> None:
    """Create the demo agreements that do not exist yet (revoked ones stay revoked)."""
    for agreement_id, (owner, recipient) in DEMO_AGREEMENTS.items():
        if sharing.rules.get(agreement_id) is not None:
            continue
        body = demo_agreement_body(owner, recipient)
        try:
            await sharing.create(None, DEMO_ACTOR, body, agreement_id=agreement_id)
        except ProtocolError as err:  # another node seeding at the same moment
            if err.code is not ErrorCode.CONFLICT:
                raise


async def seed_demo(
    directory: Directory,
    commands: CommandService,
    projections: Projections,
    sharing: SharingAdmin | None = None,
) -> bool:
    """Seed demo organisations, users, agreements and one open incident; False if
    already seeded (missing demo agreements are still added)."""
    if directory.by_username("dispatch") is not None:
        if sharing is not None:
            await seed_demo_agreements(sharing)
        return False
    try:
        for org in DEMO_ORGS:
            if directory.org(org.id) is None:
                await directory.add_org(org)
        for username, org_id, name, role in DEMO_USERS:
            await create_user(
                directory,
                username=username,
                org=org_id,
                name=name,
                role=role,
                password=secrets.token_urlsafe(16) if role == "bot" else DEMO_PASSWORD,
            )
    except (DirectoryConflict, ProtocolError):
        await directory.reload()  # another node is seeding: its incident id is ours too
    if sharing is not None:
        await seed_demo_agreements(sharing)
    dispatcher = directory.user("u_dispatch")
    assert dispatcher is not None
    created = await commands.execute(
        dispatcher,
        v1.IncidentCreate(
            id="demo-incident",
            title="Person in crisis on Harbour Bridge",
            category="welfare",
            priority="high",
            location=v1.Location(51.5055, -0.0754, "Harbour Bridge, north end"),
            orgs=("metro-police", "harbour-shelter"),
            lead_org="metro-police",
            liaisons={"metro-police": "u_dispatch", "harbour-shelter": "u_shelter-lead"},
            description="Caller reports a distressed person near the railing.",
        ),
    )
    incident = created["incident"]
    await commands.execute(
        dispatcher,
        v1.IncidentStatus(
            id="demo-active",
            incident=incident,
            visibility=None,
            tlp=None,
            recipients=None,
            status="active",
            note=None,
        ),
    )
    await commands.execute(
        dispatcher,
        v1.MessagePost(
            id="demo-hello",
            incident=incident,
            visibility=None,
            tlp=None,
            recipients=None,
            text="Shelter team, can you send an outreach worker? Officers are 5 min out.",
            mention_users=(),
            mention_orgs=("harbour-shelter",),
            reply_to=None,
            urgent=True,
        ),
    )
    await commands.execute(
        dispatcher,
        v1.TaskCreate(
            id="demo-task",
            incident=incident,
            visibility=None,
            tlp=None,
            recipients=None,
            title="Outreach worker to the bridge",
            details="Approach from the north steps.",
            assignee=v1.Assignee(org="harbour-shelter"),
        ),
    )
    log.info("demo data seeded: incident %s", incident)
    await projections.get(incident)
    return True
