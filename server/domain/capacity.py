"""Who publishes and who sees an organisation's capacity (SPEC 27.2). Pure.

The rule (data, not scattered checks): capacity is **shared with every
partner organisation of the deployment** — the board exists so that
dispatch and the other NGOs see at a glance who has beds or an Arabic
speaker tonight, and an organisation joins a deployment to take part in
exactly that. Left out:

* auditors (separation of duties: they read the audit log only);
* a bot whose API key is scoped to some incidents sees its own
  organisation's capacity only (its key was cut down to an errand);
* organisations of kind ``system`` (the administration) have no board row.

Publishing: the organisation's coordinators (dispatcher, supervisor: the
liaison or duty officer), a deployment admin for any organisation, and a bot
of the organisation whose key allows ``capacity.publish``.
"""

from __future__ import annotations

from server.domain.model import Org, Principal, Role

#: The pseudo command type an API key's scope names to publish capacity.
CAPACITY_PUBLISH = "capacity.publish"
_PUBLISHERS = frozenset({Role.DISPATCHER, Role.SUPERVISOR})


def on_board(org: Org) -> bool:
    return org.kind != "system"


def sees_capacity(reader: Principal, owner: Org) -> bool:
    if reader.role is Role.AUDITOR or not on_board(owner):
        return False
    if reader.scope is not None and reader.scope.incidents is not None:
        return owner.id == reader.org_id
    return True


def may_publish(who: Principal, owner: Org) -> bool:
    if not on_board(owner):
        return False
    if who.scope is not None:
        return who.org_id == owner.id and who.may_send(CAPACITY_PUBLISH)
    if who.role is Role.ADMIN:
        return True
    return who.org_id == owner.id and who.role in _PUBLISHERS
