// One line of plain text per event, for the timeline and the replay.

import { STATUS_LABEL, PRIORITY_LABEL, RESPONDER_LABEL, label } from "../format.js";
import { positionView } from "../labels.js";

const POSITION_NOTE = {
  none: "",
  redacted: " (position not shared)",
  coarse: " (approximate position)",
  exact: " (with position)",
};

function clip(text, n = 90) {
  const chars = [...String(text ?? "")];
  return chars.length > n ? chars.slice(0, n - 1).join("") + "…" : chars.join("");
}

export function assigneeText(app, state, assignee) {
  if (!assignee) return "nobody";
  if (assignee.user) {
    const who = app.personName(state, assignee.user);
    return assignee.org ? `${who} (${app.orgName(assignee.org)})` : who;
  }
  return app.orgName(assignee.org);
}

/** "Dana Dispatcher", "created task #4 …" for an envelope (not a placeholder). */
export function describe(app, state, env) {
  const b = env.body || {};
  const taskTitle = (id) => {
    const t = state?.tasks.get(id);
    return t ? `#${id} “${clip(t.title, 50)}”` : `#${id}`;
  };
  switch (env.type) {
    case "incident.created":
      return `opened the incident “${clip(b.title)}” (${label(PRIORITY_LABEL, b.priority)})`;
    case "incident.updated": {
      const parts = [];
      if (b.title) parts.push(`title “${clip(b.title, 60)}”`);
      if (b.priority) parts.push(`priority ${label(PRIORITY_LABEL, b.priority)}`);
      if (b.category) parts.push(`category ${b.category}`);
      if (b.location) parts.push("location");
      if (b.description) parts.push("description");
      if (b.external_ref) parts.push(`CAD number ${b.external_ref}`);
      if (b.lead_org) parts.push(`lead ${app.orgName(b.lead_org)}`);
      if (b.add_orgs?.length) parts.push(`added ${b.add_orgs.map((o) => app.orgName(o)).join(", ")}`);
      if (b.liaisons && Object.keys(b.liaisons).length) parts.push("contacts");
      if (b.subject) parts.push("the person it is about");
      if (b.needs) parts.push(b.needs.length ? `needs ${b.needs.join(", ")}` : "no needs");
      return `updated the incident: ${parts.join(", ") || "details"}`;
    }
    case "incident.status_changed":
      return `set the incident to ${label(STATUS_LABEL, b.status)}${b.note ? ` — ${clip(b.note)}` : ""}`;
    case "message.posted":
      return `${b.urgent ? "posted URGENT" : "posted"}: “${clip(b.text)}”`;
    case "message.edited":
      return `edited message #${b.message}: “${clip(b.text)}”`;
    case "message.retracted":
      return `withdrew message #${b.message}`;
    case "message.acknowledged":
      return `acknowledged message #${b.message}`;
    case "task.created":
      return `created task #${env.seq} “${clip(b.title, 60)}”${b.assignee ? ` for ${assigneeText(app, state, b.assignee)}` : ""}`;
    case "task.assigned":
      return `assigned task ${taskTitle(b.task)} to ${assigneeText(app, state, b.assignee)}`;
    case "task.accepted":
    case "task.declined":
    case "task.started":
    case "task.completed":
    case "task.cancelled": {
      const verb = {
        "task.accepted": "accepted",
        "task.declined": "declined",
        "task.started": "started",
        "task.completed": "completed",
        "task.cancelled": "cancelled",
      }[env.type];
      return `${verb} task ${taskTitle(b.task)}${b.note ? ` — ${clip(b.note)}` : ""}`;
    }
    case "responder.status":
      return `is ${label(RESPONDER_LABEL, b.status).toLowerCase()}${POSITION_NOTE[positionView(b.position).kind]}`;
    case "responder.position": {
      const kind = positionView(b.position).kind;
      return kind === "redacted" ? "shared a position (not shared with your organisation)" : kind === "coarse" ? "shared an approximate position" : "shared a position";
    }
    case "receipt.recorded":
      return `${b.state === "seen" ? "saw" : "received"} ${b.task ? `task ${taskTitle(b.task)}` : `message #${b.message}`}`;
    case "escalation.unacknowledged":
    case "escalation.overdue": {
      const what = b.task ? `task ${taskTitle(b.task)}` : `urgent message #${b.message}`;
      const why = env.type === "escalation.overdue" ? "is overdue" : "was not acknowledged in time";
      return `ESCALATION: ${what} ${why} by ${(b.orgs || []).map((o) => app.orgName(o)).join(", ")}`;
    }
    case "checkin.started":
      return `started a check-in timer (every ${Math.round((b.interval_s || 0) / 60) || 1} min)`;
    case "checkin.ok":
      return "checked in: OK";
    case "checkin.ended":
      return "stopped their check-in timer";
    case "checkin.duress":
      return `raised a DURESS alarm${POSITION_NOTE[positionView(b.position).kind]}`;
    case "checkin.missed":
      return `MISSED CHECK-IN: ${app.personName(state, b.user)}${POSITION_NOTE[positionView(b.position).kind]}`;
    case "checkin.resolved":
      return `resolved the alarm of ${app.personName(state, b.user)}${b.note ? ` — ${clip(b.note)}` : ""}`;
    case "capacity.requested":
      return `requested from ${app.orgName(b.org)}: ${Object.entries(b.items || {}).map(([k, v]) => `${k.replace(/_/g, " ")} ${Array.isArray(v) ? v.join(", ") : v}`).join(", ")}${b.note ? ` — ${clip(b.note)}` : ""}`;
    case "capacity.accepted":
    case "capacity.declined":
      return `${env.type === "capacity.accepted" ? "accepted" : "declined"} capacity request #${b.request}${b.note ? ` — ${clip(b.note)}` : ""}`;
    default:
      return `did something this app does not know (${env.type})`;
  }
}
