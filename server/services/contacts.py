"""Who to call on an incident: each organisation's liaison with a phone number,
and which of the people a reader sees act are bots.

Both are derived from the incident *view* a reader may see (``IncidentState.view``
through its ``Sight``, the one audience function): a phone number is handed out
only for a liaison of an incident the reader takes part in, and a bot is named
only if the reader sees it act (its message, task or status). The directory
adds what events do not carry: the phone number and the role.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from server.domain.model import Role
from server.storage.directory import Directory, User

#: Characters a phone number may have: what people type (+44 20 7946 0000,
#: (020) 7946-0000, 112). At least three digits; 32 characters at most.
PHONE_RE = re.compile(r"\+?[0-9 ()./-]{3,31}")
PHONE_MAX = 32


def phone_problem(raw: str) -> str | None:
    """Why ``raw`` is not a phone number (a sentence), or None."""
    if len(raw) > PHONE_MAX:
        return f"at most {PHONE_MAX} characters"
    if not PHONE_RE.fullmatch(raw) or sum(c.isdigit() for c in raw) < 3:
        return "digits, spaces and + ( ) . - / only, with at least three digits"
    return None


def check_phone(raw: str | None) -> str | None:
    """The number to store (trimmed; None to remove it), or ``invalid``."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    problem = phone_problem(value)
    if problem:
        raise ProtocolError(
            ErrorCode.INVALID, f"phone: {problem}", {"field": "phone", "reason": "format"}
        )
    return value


def _present(user: User | None) -> bool:
    return user is not None and not user.deleted and not user.disabled


def contacts(view: Mapping[str, Any], users: Mapping[str, User]) -> dict[str, Any]:
    """``{incident, liaisons: [{org, user, name, phone}], bots: [user id]}`` for a view."""
    liaisons = []
    for org in view["orgs"]:
        user_id = (view.get("liaisons") or {}).get(org)
        if not user_id:
            continue
        user = users.get(user_id)
        liaisons.append(
            {
                "org": org,
                "user": user_id,
                "name": user.name if user is not None else user_id,
                "phone": user.phone if _present(user) and user is not None else None,
            }
        )
    seen = {m["author"]["user"] for m in view.get("messages", ())}
    seen |= {t["created_by"] for t in view.get("tasks", ())}
    seen |= {r["user"] for r in view.get("responders", ())}
    seen |= {entry["user"] for entry in liaisons}
    bots = sorted(u for u in seen if (d := users.get(u)) is not None and d.role is Role.BOT)
    return {"incident": view["id"], "liaisons": liaisons, "bots": bots}


async def set_phone(directory: Directory, user_id: str, phone: str | None) -> User:
    """Store (or remove, with None) a user's phone number."""
    user = directory.users.get(user_id)
    if user is None or user.deleted:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no user {user_id!r}")
    return await directory.update_user(dataclasses.replace(user, phone=check_phone(phone)))
