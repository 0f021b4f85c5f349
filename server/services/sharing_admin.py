"""Administration of sharing rules, shared by the REST API and the CLI (SPEC section 9.4).

Creating and revoking agreements and setting an organisation's default label:
each is checked (who may, what is valid) and audited here, whatever its
outcome, so the two front ends cannot drift apart. ``who`` is the principal
of a REST caller; None is the operator at the command line, who may act for
any organisation (they hold the data dir or the Redis URL already).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from protocol.fields import Fields
from protocol.limits import LIMITS, Limits
from server.domain.model import Org, Principal, Role
from server.domain.sharing import Agreement, FieldClass, Label, Precision
from server.errors import StorageUnavailable
from server.services.sharing_rules import SharingRules, now_ms
from server.storage.agreements import AgreementConflict
from server.storage.audit import AuditEntry, AuditLog
from server.storage.directory import Directory

#: Roles that may read the agreements of their organisation.
READERS = frozenset({Role.ADMIN, Role.SUPERVISOR})
LABELS = tuple(label.value for label in Label)
FIELD_CLASSES = tuple(f.value for f in FieldClass)
PRECISIONS = tuple(p.value for p in Precision)
NOTE_CHARS = 500


def _invalid(field: str, why: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID, f"{field}: {why}", {"field": field})


def _is_kind(prefix: str) -> bool:
    """An event type, or a dot-separated prefix of one ("task", "responder.position")."""
    return any(t == prefix or t.startswith(prefix + ".") for t in v1.EVENT_TYPES)


def parse_agreement(
    obj: Any,
    *,
    owner: str,
    created_by: str,
    now: int,
    directory: Directory,
    limits: Limits = LIMITS,
    agreement_id: str | None = None,
) -> Agreement:
    """A new agreement from an untrusted request body; ``invalid`` names the field."""
    f = Fields(obj, "", limits)
    recipients = f.str_list("recipients", required=True) or ()
    if not recipients:
        raise _invalid("recipients", "name at least one organisation")
    for org in recipients:
        if directory.org(org) is None:
            raise _invalid("recipients", f"no organisation {org!r}")
        if org == owner:
            raise _invalid("recipients", "an organisation needs no agreement with itself")
    kinds = f.str_list("kinds") or ()
    for kind in kinds:
        if not _is_kind(kind):
            raise _invalid("kinds", f"{kind!r} is not an event type or a prefix of one")
    fields = f.str_list("fields") or ()
    for name in fields:
        if name not in FIELD_CLASSES:
            raise _invalid("fields", f"{name!r} is not one of {', '.join(FIELD_CLASSES)}")
    categories = f.str_list("categories")
    if categories is not None and not categories:
        raise _invalid("categories", "omit it (or null) for every category, or name some")
    history = f.flag("history")
    if not fields and not history:
        raise _invalid("fields", "an agreement shares some fields, or the history, or both")
    valid_until = f.opt_int("valid_until_ms")
    if valid_until is not None and valid_until <= now:
        raise _invalid("valid_until_ms", "must be in the future")
    return Agreement(
        id=agreement_id or new_agreement_id(),
        owner=owner,
        recipients=recipients,
        kinds=kinds,
        fields=tuple(FieldClass(name) for name in fields),
        position=Precision(f.choice("position", PRECISIONS, required=False) or Precision.COARSE),
        categories=categories,
        history=history,
        valid_from_ms=now,
        valid_until_ms=valid_until,
        revoked_ms=None,
        created_by=created_by,
        note=f.opt_str("note", max_chars=NOTE_CHARS) or "",
    )


def new_agreement_id() -> str:
    return "agr_" + secrets.token_hex(8)


def can_read(who: Principal, agreement: Agreement) -> bool:
    """Admins and supervisors of the owner or of a recipient see an agreement."""
    return who.role in READERS and (
        who.org_id == agreement.owner or who.org_id in agreement.recipients
    )


class SharingAdmin:
    """The audited writes of section 9.4: create, revoke, default label."""

    def __init__(self, rules: SharingRules, directory: Directory, audit: AuditLog) -> None:
        self.rules, self.directory, self.audit = rules, directory, audit

    async def _record(self, entry: AuditEntry) -> None:
        await self.audit.append(entry, now_ms())

    async def _audited(self, entry: AuditEntry, step: Any) -> Any:
        """Run ``step``; one audit record of how it ended, then its result or error."""
        try:
            result, detail = await step()
        except ProtocolError as err:
            await self._record(replace(entry, outcome=err.code.code))
            raise
        except StorageUnavailable:
            await self._record(replace(entry, outcome=ErrorCode.UNAVAILABLE.code))
            raise
        await self._record(replace(entry, detail={**entry.detail, **detail}))
        return result

    async def create(
        self,
        who: Principal | None,
        actor: str,
        body: Any,
        address: str = "",
        agreement_id: str | None = None,
    ) -> Agreement:
        """Owner: the admin's organisation (REST), or ``body["owner"]`` (CLI).

        ``agreement_id``: a fixed id (the demo's), else a random one.
        """
        owner = body.get("owner") if isinstance(body, dict) else None
        new_id = agreement_id or new_agreement_id()
        # What the caller named, as far as it is a short string (the record is not theirs).
        named = owner[:64] if isinstance(owner, str) else None
        entry = AuditEntry(actor, "agreement.create", new_id, "ok", address, {"owner": named})

        async def step() -> tuple[Agreement, dict[str, Any]]:
            if owner is not None and not isinstance(owner, str):
                raise _invalid("owner", "must be an organisation id")
            if who is not None:
                if who.role is not Role.ADMIN:
                    raise ProtocolError(ErrorCode.FORBIDDEN, "administrators only")
                if owner is not None and owner != who.org_id:
                    raise ProtocolError(
                        ErrorCode.FORBIDDEN, "an agreement is owned by the admin's organisation"
                    )
            owned_by = who.org_id if who is not None else owner
            if not isinstance(owned_by, str) or self.directory.org(owned_by) is None:
                raise _invalid("owner", f"no organisation {owned_by!r}")
            agreement = parse_agreement(
                body,
                owner=owned_by,
                created_by=actor,
                now=now_ms(),
                directory=self.directory,
                agreement_id=new_id,
            )
            try:
                await self.rules.create(agreement)
            except AgreementConflict as exc:  # an id drawn twice: 2^-64, but typed
                raise ProtocolError(ErrorCode.CONFLICT, str(exc)) from exc
            return agreement, _summary(agreement.to_wire())

        agreement: Agreement = await self._audited(entry, step)
        return agreement

    async def revoke(
        self, who: Principal | None, actor: str, agreement_id: str, address: str = ""
    ) -> tuple[Agreement, bool]:
        """An admin of the owner or of a recipient; the operator at the CLI.

        The record as stored, and whether it had been revoked before (then
        nothing changed: the first revoke's time and name stay).
        """
        entry = AuditEntry(actor, "agreement.revoke", agreement_id, "ok", address)

        async def step() -> tuple[tuple[Agreement, bool], dict[str, Any]]:
            if who is not None and who.role is not Role.ADMIN:
                raise ProtocolError(ErrorCode.FORBIDDEN, "administrators only")
            known = self.rules.get(agreement_id)
            if known is None:
                await self.rules.catch_up()  # written elsewhere a moment ago
                known = self.rules.get(agreement_id)
            if known is None or (who is not None and not can_read(who, known)):
                raise ProtocolError(ErrorCode.NOT_FOUND, "no such agreement")
            at = now_ms()
            stored = await self.rules.revoke(agreement_id, actor, at)
            if stored is None:
                raise ProtocolError(ErrorCode.NOT_FOUND, "no such agreement")
            # Revoked before: nothing changed, and the record says by whom.
            already = stored.revoked_ms != at or stored.revoked_by != actor
            return (stored, already), {"owner": stored.owner, "already_revoked": already}

        result: tuple[Agreement, bool] = await self._audited(entry, step)
        return result

    async def set_default_label(
        self, who: Principal | None, actor: str, org_id: str, body: Any, address: str = ""
    ) -> Org:
        """An admin of that organisation; the operator at the CLI."""
        entry = AuditEntry(actor, "org.default_label", org_id, "ok", address)

        async def step() -> tuple[Org, dict[str, Any]]:
            if who is not None and (who.role is not Role.ADMIN or who.org_id != org_id):
                raise ProtocolError(
                    ErrorCode.FORBIDDEN, "only an administrator of this organisation"
                )
            label = Label(Fields(body, "").choice("default_label", LABELS))
            org = self.directory.org(org_id)
            if org is None:
                raise ProtocolError(ErrorCode.NOT_FOUND, f"no organisation {org_id!r}")
            updated = await self.directory.update_org(replace(org, default_label=label))
            return updated, {"from": org.default_label.value, "to": label.value}

        org: Org = await self._audited(entry, step)
        return org


def _summary(wire: dict[str, Any]) -> dict[str, Any]:
    """What the audit record keeps of a new agreement: all of it but the note."""
    return {k: v for k, v in wire.items() if k not in ("id", "note", "created_by")}
