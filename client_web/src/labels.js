// TLP 2.0 labels, redaction and the lead organisation's powers as the client
// reads them (SPEC 8.0, 9.4). Pure: no DOM, so the rules are tested in node.
// The server decides every one of them; this only keeps people from sending
// what it would refuse, and shows what they were given in plain words.

import { COORDINATOR_ROLES, TLP_LABELS, INCIDENT_LABELS } from "./protocol.js";

// Every label, least to most restricted; the labels an incident itself may carry.
export { TLP_LABELS, INCIDENT_LABELS };

/** What each label means, for the badge's tooltip and the picker. */
export const TLP_MEANING = {
  CLEAR: "No limit on disclosure",
  GREEN: "Everyone on this incident, organisations added later included",
  AMBER: "The organisations on this incident; organisations added later do not get it",
  "AMBER+STRICT": "Only the organisations it names",
  RED: "Only the people it names",
};

/** The label an event or incident carries: events stored before labels count as AMBER. */
export function labelOf(tlp) {
  return TLP_LABELS.includes(tlp) ? tlp : "AMBER";
}

/** "TLP:AMBER+STRICT", as TLP 2.0 writes it. */
export function tlpText(tlp) {
  return "TLP:" + labelOf(tlp);
}

export const NOT_SHARED = "not shared with your organisation";

/** The server's redaction marker, `{"redacted": true}` (SPEC 9.4). */
export function isRedacted(value) {
  return value !== null && typeof value === "object" && value.redacted === true;
}

const SUBJECT_FIELDS = [
  ["name", "Name"],
  ["dob", "Date of birth"],
  ["phone", "Phone"],
  ["address", "Address"],
];

/**
 * A subject ({name, dob, phone, address}) as rows to show:
 * [{key, label, text, redacted}], absent fields left out. Null for no subject.
 */
export function subjectRows(subject) {
  if (!subject || typeof subject !== "object") return null;
  const rows = [];
  for (const [key, label] of SUBJECT_FIELDS) {
    const value = subject[key];
    if (isRedacted(value)) rows.push({ key, label, text: NOT_SHARED, redacted: true });
    else if (typeof value === "string" && value) rows.push({ key, label, text: value, redacted: false });
  }
  return rows.length ? rows : null;
}

const finite = (v) => typeof v === "number" && Number.isFinite(v);

/**
 * How to show a position: {kind: "none"} (nothing shared yet),
 * {kind: "redacted"} (it exists, but not for this organisation),
 * {kind: "coarse", lat, lon, radius} (rounded to ~100 m: drawn as a circle),
 * or {kind: "exact", lat, lon, accuracy}.
 */
export function positionView(position) {
  if (position === null || position === undefined) return { kind: "none" };
  if (isRedacted(position)) return { kind: "redacted" };
  if (typeof position !== "object" || !finite(position.lat) || !finite(position.lon)) return { kind: "redacted" };
  const accuracy = finite(position.accuracy_m) ? position.accuracy_m : null;
  if (position.precision === "coarse") {
    return { kind: "coarse", lat: position.lat, lon: position.lon, radius: Math.max(100, accuracy ?? 100) };
  }
  return { kind: "exact", lat: position.lat, lon: position.lon, accuracy };
}

/** A position the map and distances may use ({lat, lon}), or null. */
export function drawable(position) {
  const v = positionView(position);
  return v.kind === "coarse" || v.kind === "exact" ? { lat: v.lat, lon: v.lon } : null;
}

/**
 * The composer's choice checked before it is queued. `choice` is
 * {tlp, visibility (null or org ids), recipients (user ids), mentions {users, orgs}}.
 * Returns null when it may be sent, else {field, message} (the field the
 * server would name in its `invalid`).
 */
export function checkLabelChoice(choice) {
  const tlp = choice.tlp;
  const recipients = choice.recipients || [];
  if (!TLP_LABELS.includes(tlp)) {
    return { field: "tlp", message: "Choose a label for this message." };
  }
  if (tlp === "AMBER+STRICT" && !choice.visibility?.length) {
    return {
      field: "visibility",
      message: "TLP:AMBER+STRICT is for named organisations only: choose which organisations may see it.",
    };
  }
  if (tlp === "RED") {
    if (!recipients.length) {
      return { field: "recipients", message: "TLP:RED is for named people only: choose who it is for." };
    }
    const orgs = choice.mentions?.orgs || [];
    const others = (choice.mentions?.users || []).filter((u) => !recipients.includes(u));
    if (orgs.length || others.length) {
      return {
        field: "mentions",
        message: "A TLP:RED message may mention only the people it is for: remove the other mentions.",
      };
    }
  } else if (recipients.length) {
    return { field: "recipients", message: "Only a TLP:RED message is for named people." };
  }
  return null;
}

/**
 * The label fields of a new message or task, added to `cmd` (a copy):
 * `tlp` always (the person saw and kept or changed it), `recipients` for
 * RED, and `visibility` for AMBER+STRICT. RED carries no visibility of its
 * own: the server gives it the recipients' organisations and the author's.
 */
export function withLabel(cmd, { tlp, visibility = null, recipients = [] }) {
  const out = { ...cmd, tlp };
  delete out.visibility;
  delete out.recipients;
  if (tlp === "RED") out.recipients = [...recipients];
  else if (visibility?.length) out.visibility = [...visibility];
  return out;
}

// ------------------------------------------------------ the lead's powers

/**
 * What `me` may do on this incident (SPEC 8.0's table). A partner
 * organisation's coordinator runs its own part only. The server is the
 * authority; this decides which controls are offered.
 */
export function powers(state, me) {
  const coordinator = !!me && COORDINATOR_ROLES.has(me.role);
  const lead = coordinator && (!state?.lead_org || state.lead_org === me.org);
  return {
    coordinator,
    lead,
    /** title, category, priority, location, description, subject, label */
    editIncident: lead,
    /** close, reopen... */
    changeStatus: lead,
    addOrgs: lead,
    changeLead: lead,
    /** create or assign tasks to anyone (lead) or within its own organisation (partner) */
    assignTo: (assignee) => coordinator && (lead || !assignee?.org || assignee.org === me.org),
    /** cancel any task (lead) or those its organisation created (partner) */
    cancelTask: (task, creatorOrg) => coordinator && (lead || creatorOrg === me.org),
  };
}

/** Why a partner's coordinator does not get a control (its tooltip). */
export function leadOnlyReason(state, orgName = (o) => o) {
  const lead = state?.lead_org ? orgName(state.lead_org) : "the lead organisation";
  return `Only ${lead}, which leads this incident, can change this.`;
}

/**
 * The people a TLP:RED message may be for: every participant's user this
 * client knows (from the incident's events, or the directory), but `me`,
 * sorted by name. `people` maps are user id -> {name, org}.
 */
export function recipientCandidates(orgs, me, ...people) {
  const seen = new Map();
  for (const map of people) {
    for (const [id, p] of map || []) {
      if (id === me?.id || seen.has(id) || !p?.org || !orgs.includes(p.org)) continue;
      seen.set(id, { id, name: p.name || id, org: p.org });
    }
  }
  return [...seen.values()].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}

/** Who a reply to a TLP:RED message is for: its author and recipients, but me. */
export function redHeirs(parent, me) {
  const names = [parent.author.user, ...(parent.recipients || [])].filter((u) => u && u !== me?.id);
  return [...new Set(names)];
}
