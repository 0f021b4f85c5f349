// The client's projection of an incident's log: the same rules as the
// server's (SPEC section 10, "Building state from events"), applied to the
// envelopes this organisation receives, placeholders included. Used for the
// live view (the backlog from seq 1, then live `ev`) and for replay (folded
// from the timeline up to a chosen moment).

import { TASK_FINAL } from "./protocol.js";
import { applyActionDone, applyReview } from "./reviews.js";

export const TASK_STATUS_AFTER = {
  "task.assigned": "assigned",
  "task.accepted": "accepted",
  "task.declined": "declined",
  "task.started": "in_progress",
  "task.completed": "completed",
  "task.cancelled": "cancelled",
};

export function emptyState(id, epoch = null) {
  return {
    id,
    epoch,
    seq: 0,
    title: "",
    external_ref: null,
    category: "",
    priority: "normal",
    description: null,
    location: null,
    status: "reported",
    status_history: [],
    orgs: [],
    lead_org: null,
    liaisons: {},
    tlp: "AMBER",
    subject: null,
    // The system that raised the incident (a CAP alert: SPEC 8.3), or null.
    source: null,
    created_by: "",
    created: 0,
    updated: 0,
    messages: new Map(),
    tasks: new Map(),
    responders: new Map(),
    checkins: new Map(),
    openCheckins: new Map(),
    people: new Map(),
    reviews: new Map(),
    actionsDone: new Map(),
    // Expertise the incident needs, and capacity requests by seq (SPEC 27).
    needs: [],
    capacityRequests: new Map(),
    restricted: 0,
    rev: 0,
  };
}

function learn(s, user, name, org) {
  if (user && name) s.people.set(user, { name, org });
}

/**
 * Apply one envelope; the caller guarantees seq order (env.seq === s.seq + 1).
 * Unknown event types only advance the position (SPEC 19).
 */
export function apply(s, env) {
  s.seq = env.seq;
  s.epoch = env.epoch;
  s.rev++;
  if (env.type === "restricted") {
    s.restricted++;
    return;
  }
  // A RED event moves no one's `updated` (SPEC 9.4): not even its readers'.
  if (env.body?.tlp !== "RED") s.updated = env.ts;
  if (env.actor) learn(s, env.actor.user, env.actor.name, env.actor.org);
  const handler = HANDLERS[env.type];
  if (handler) handler(s, env, env.body || {});
}

function touchTask(task, env) {
  task.updated_seq = env.seq;
  task.updated = env.ts;
  task.rev = (task.rev || 0) + 1;
}

function responder(s, env) {
  let r = s.responders.get(env.actor.user);
  if (!r) {
    r = {
      user: env.actor.user,
      org: env.actor.org,
      name: env.actor.name,
      status: null,
      status_ts: null,
      position: null,
      position_ts: null,
    };
    s.responders.set(env.actor.user, r);
  }
  r.name = env.actor.name || r.name;
  return r;
}

const HANDLERS = {
  "incident.created"(s, env, b) {
    s.title = b.title;
    s.category = b.category;
    s.priority = b.priority;
    s.description = b.description ?? null;
    s.external_ref = b.external_ref ?? null;
    s.location = b.location ?? null;
    s.orgs = [...(b.orgs || [])];
    s.lead_org = b.lead_org ?? null;
    s.liaisons = { ...(b.liaisons || {}) };
    s.tlp = b.tlp ?? "AMBER";
    s.subject = b.subject ?? null;
    s.source = b.source ?? null;
    s.created_by = env.actor.user;
    s.created = env.ts;
    s.status = b.status || "reported";
    s.needs = [...(b.needs || [])];
    s.status_history = [{ status: s.status, by: env.actor.user, ts: env.ts, seq: env.seq }];
  },
  "incident.updated"(s, env, b) {
    for (const key of ["title", "category", "priority", "description", "location", "lead_org", "external_ref"]) {
      if (b[key] !== null && b[key] !== undefined) s[key] = b[key];
    }
    for (const org of b.add_orgs || []) if (!s.orgs.includes(org)) s.orgs.push(org);
    Object.assign(s.liaisons, b.liaisons || {});
    if (b.tlp) s.tlp = b.tlp;
    if (b.subject) s.subject = b.subject;
    if (b.needs) s.needs = [...b.needs];
  },
  "incident.status_changed"(s, env, b) {
    s.status = b.status;
    s.status_history.push({
      status: b.status,
      by: env.actor.user,
      ts: env.ts,
      seq: env.seq,
      note: b.note ?? null,
    });
  },
  "message.posted"(s, env, b) {
    s.messages.set(env.seq, {
      seq: env.seq,
      tlp: b.tlp ?? "AMBER",
      recipients: b.recipients || [],
      author: { user: env.actor.user, org: env.actor.org, name: env.actor.name },
      text: b.text,
      ts: env.ts,
      visibility: env.visibility,
      urgent: !!b.urgent,
      reply_to: b.reply_to ?? null,
      mentions: b.mentions || { users: [], orgs: [] },
      edited_seq: null,
      retracted: false,
      acks: {},
      receipts: {},
      escalations: [],
      cid: env.cid,
      rev: 1,
    });
  },
  "message.edited"(s, env, b) {
    const m = s.messages.get(b.message);
    if (m && !m.retracted) {
      m.text = b.text;
      m.edited_seq = env.seq;
      m.rev++;
    }
  },
  "message.retracted"(s, env, b) {
    const m = s.messages.get(b.message);
    if (m) {
      m.retracted = true;
      m.text = null;
      m.rev++;
    }
  },
  "message.acknowledged"(s, env, b) {
    const m = s.messages.get(b.message);
    if (m && !(env.actor.user in m.acks)) {
      m.acks[env.actor.user] = env.ts;
      m.rev++;
    }
  },
  "task.created"(s, env, b) {
    const task = {
      id: env.seq,
      title: b.title,
      details: b.details ?? null,
      tlp: b.tlp ?? "AMBER",
      recipients: b.recipients || [],
      subject: b.subject ?? null,
      created_by: env.actor.user,
      visibility: env.visibility,
      status: "open",
      assignee: { org: null, user: null },
      note: null,
      updated_seq: env.seq,
      updated: env.ts,
      due: b.due ?? null,
      receipts: {},
      escalations: [],
      rev: 1,
    };
    if (b.assignee) {
      task.assignee = { org: b.assignee.org ?? null, user: b.assignee.user ?? null };
      task.status = "assigned";
    }
    s.tasks.set(env.seq, task);
  },
  "receipt.recorded"(s, env, b) {
    const item = followed(s, b);
    if (!item) return;
    const seen = (item.receipts[b.state] ||= {});
    if (!(env.actor.user in seen)) seen[env.actor.user] = env.ts;
    item.rev = (item.rev || 0) + 1;
  },
  "escalation.unacknowledged": escalated,
  "escalation.overdue": escalated,
  "checkin.started"(s, env, b) {
    startCheckin(s, env, b);
  },
  "checkin.ok"(s, env, b) {
    const c = checkinOf(s, env, b);
    if (!c || !isOpen(c) || c.status === "duress") return;
    Object.assign(c, { status: "active", due: b.due ?? null, last_ok: env.ts, alarm: null });
    checkinPosition(c, env, b);
  },
  "checkin.duress"(s, env, b) {
    if (!("checkin" in b)) startCheckin(s, env, b);
    const c = s.checkins.get(b.checkin ?? env.seq);
    if (!c) return;
    Object.assign(c, { status: "duress", due: null, updated_seq: env.seq });
    c.alarm = { seq: env.seq, type: env.type, ts: env.ts };
    checkinPosition(c, env, b);
  },
  "checkin.missed"(s, env, b) {
    const c = checkinOf(s, env, b);
    if (!c || c.status !== "active" || c.due !== (b.due ?? null)) return;
    Object.assign(c, { status: "missed", due: null });
    c.alarm = { seq: env.seq, type: env.type, ts: env.ts, due: b.due ?? null };
  },
  "checkin.ended": closeCheckin,
  "checkin.resolved": closeCheckin,
  "responder.status"(s, env, b) {
    const r = responder(s, env);
    r.status = b.status;
    r.status_ts = env.ts;
    if (b.position) {
      r.position = b.position;
      r.position_ts = env.ts;
    }
  },
  "responder.position"(s, env, b) {
    const r = responder(s, env);
    r.position = b.position;
    r.position_ts = env.ts;
  },
  "review.submit": applyReview,
  "review.action_done": applyActionDone,
  "capacity.requested"(s, env, b) {
    s.capacityRequests.set(env.seq, {
      seq: env.seq,
      org: b.org,
      items: b.items || {},
      note: b.note ?? null,
      by: env.actor.user,
      ts: env.ts,
      tlp: b.tlp,
      visibility: env.visibility ?? null,
      status: "requested",
      answer: null,
    });
  },
  "capacity.accepted": answerCapacity,
  "capacity.declined": answerCapacity,
};

function answerCapacity(s, env, b) {
  const r = s.capacityRequests.get(b.request);
  if (!r || r.status !== "requested") return;
  r.status = env.type === "capacity.accepted" ? "accepted" : "declined";
  r.answer = { by: env.actor.user, ts: env.ts, seq: env.seq, note: b.note ?? null };
}

/** The message or task a receipt or an escalation is about. */
function followed(s, b) {
  return "message" in b ? s.messages.get(b.message) : s.tasks.get(b.task);
}

function escalated(s, env, b) {
  const item = followed(s, b);
  if (!item) return;
  item.escalations.push({ seq: env.seq, type: env.type, ts: env.ts, due: b.due, orgs: b.orgs });
  item.rev = (item.rev || 0) + 1;
}

// Lone-worker check-ins: one open per worker (SPEC "Check-ins"); the
// `alarm` (a missed check-in or a duress) shows until it is resolved.
export const CHECKIN_ALARMS = new Set(["missed", "duress"]);

export function isOpen(c) {
  return c.status === "active" || CHECKIN_ALARMS.has(c.status);
}

function startCheckin(s, env, b) {
  const c = {
    id: env.seq,
    user: env.actor.user,
    org: env.actor.org,
    name: env.actor.name,
    tlp: b.tlp ?? "AMBER",
    visibility: env.visibility,
    status: "active",
    interval_s: b.interval_s ?? null,
    due: b.due ?? null,
    started: env.ts,
    last_ok: null,
    position: null,
    position_ts: null,
    alarm: null,
    resolved: null,
    updated_seq: env.seq,
  };
  checkinPosition(c, env, b);
  s.checkins.set(env.seq, c);
  s.openCheckins.set(env.actor.user, env.seq);
}

function checkinOf(s, env, b) {
  const c = s.checkins.get(b.checkin);
  if (c) c.updated_seq = env.seq;
  return c;
}

function checkinPosition(c, env, b) {
  if (b.position) {
    c.position = b.position;
    c.position_ts = env.ts;
  }
}

function closeCheckin(s, env, b) {
  const c = checkinOf(s, env, b);
  if (!c || !isOpen(c)) return;
  c.due = null;
  if (env.type === "checkin.resolved") {
    c.status = "resolved";
    c.resolved = { by: env.actor.user, ts: env.ts, note: b.note ?? null };
  } else c.status = "ended";
  if (s.openCheckins.get(c.user) === c.id) s.openCheckins.delete(c.user);
}

/** Check-ins the view shows: running ones, and alarms (resolved or not). */
export function checkinList(s) {
  return [...s.checkins.values()].filter((c) => isOpen(c) || c.alarm);
}

/** Alarms nobody has resolved yet: the banner shows them. */
export function openAlarms(s) {
  return [...s.checkins.values()].filter((c) => CHECKIN_ALARMS.has(c.status));
}

for (const kind of Object.keys(TASK_STATUS_AFTER)) {
  HANDLERS[kind] = (s, env, b) => {
    const task = s.tasks.get(b.task);
    if (!task || TASK_FINAL.has(task.status)) return;
    task.status = TASK_STATUS_AFTER[kind];
    if (kind === "task.assigned") {
      task.assignee = { org: b.assignee?.org ?? null, user: b.assignee?.user ?? null };
      task.assigned = env.ts;
    }
    if (kind === "task.accepted" && !task.accepted_ts) task.accepted_ts = env.ts;
    if (b.note !== null && b.note !== undefined) task.note = b.note;
    touchTask(task, env);
  };
}

/** Fold a timeline (seq order) into a state, stopping after the last event at or before `untilTs`. */
export function replayState(id, events, untilTs = Infinity) {
  const s = emptyState(id, events[0]?.epoch ?? null);
  for (const env of events) {
    if (env.type !== "restricted" && env.ts > untilTs) break;
    apply(s, env);
  }
  return s;
}

// ------------------------------------------------------------------ derived

/** Messages in channel order. */
export function messageList(s) {
  return [...s.messages.values()].sort((a, b) => a.seq - b.seq);
}

export function taskList(s) {
  return [...s.tasks.values()].sort((a, b) => a.id - b.id);
}

export function isMine(task, me) {
  if (!me) return false;
  if (task.assignee.user) return task.assignee.user === me.id;
  return task.assignee.org === me.org;
}

/** Which task actions `me` may take now (the server decides; this only hides buttons). */
export function taskActions(task, me) {
  if (!me || TASK_FINAL.has(task.status)) return [];
  const coordinator = ["dispatcher", "supervisor", "admin", "bot"].includes(me.role);
  const assignee =
    isMine(task, me) || (me.role === "supervisor" && task.assignee.org === me.org);
  const out = [];
  if (assignee) {
    if (task.status === "assigned") out.push("task.accept", "task.decline");
    if (task.status === "accepted") out.push("task.start");
    if (task.status === "accepted" || task.status === "in_progress") out.push("task.complete");
  }
  if (coordinator) out.push("task.assign", "task.cancel");
  return out;
}

/** Counts for the incident list: unread messages from others, urgent ones I have not acknowledged. */
export function counts(s, me, readSeq = 0) {
  let unread = 0;
  let unacked = 0;
  for (const m of s.messages.values()) {
    if (!me || m.author.user === me.id || m.retracted) continue;
    if (m.seq > readSeq) unread++;
    if (m.urgent && !(me.id in m.acks)) unacked++;
  }
  let myTasks = 0;
  for (const t of s.tasks.values()) if (t.status === "assigned" && isMine(t, me)) myTasks++;
  return { unread, unacked, myTasks };
}

export function personName(s, user, fallbackPeople) {
  return s.people.get(user)?.name || fallbackPeople?.get(user)?.name || user;
}
