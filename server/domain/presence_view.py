"""Who a reader may see online in an incident (SPEC section 18, ``online``).

Presence says who is on duty and watching right now: operational information
about an organisation's staff, which a participant of a joint incident does
not need about every other organisation. The rule:

* a reader sees the online users of **its own organisation**, and
* the incident's **liaisons** (the one contact person per participating
  organisation, ``IncidentState.liaisons``), whoever their organisation.

Liaisons are already named to every participant by the incident itself
(``incident.created`` / ``incident.updated`` are visible to all), so their
presence adds one bit about a person everyone was told to contact — the bit
coordination needs ("is the shelter's contact on?"). Any other user of
another organisation is left out, even if that organisation's messages are
visible: a police officer's user id and shift are not the shelter's business.
A disabled user (the directory answers None) is never shown.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.domain.directory import DirectoryView
from server.domain.incident import IncidentState


def visible_online(
    state: IncidentState, reader_org: str, online: Iterable[str], directory: DirectoryView
) -> list[str]:
    """The subset of ``online`` (user ids) that ``reader_org`` may see, in order."""
    liaisons = set(state.liaisons.values())
    shown = []
    for user_id in online:
        principal = directory.user(user_id)
        if principal is None:
            continue
        if principal.org_id == reader_org or user_id in liaisons:
            shown.append(user_id)
    return shown
