// A refusal in words from the log: when a queued action is refused because
// someone else acted first (typically after being offline), the event that
// got there first is in this device's own projection, so the person is told
// who did what and when ("Dana Dispatcher closed this incident at 19:27"),
// not only the server's code. Pure: `explain` (errors.js) is the fallback.

import { explain } from "./errors.js";
import { TASK_FINAL } from "./protocol.js";

const STATUS_WORD = {
  reported: "reported",
  active: "active",
  contained: "contained",
  resolved: "resolved",
  closed: "closed",
};

const TASK_VERB = {
  assigned: "assigned",
  accepted: "accepted",
  declined: "declined",
  in_progress: "started",
  completed: "completed",
  cancelled: "cancelled",
};

const WHAT = {
  "message.post": "Your message was not posted",
  "message.edit": "Your edit was not saved",
  "message.retract": "The message was not withdrawn",
  "message.ack": "Your acknowledgement was not needed",
  "incident.status": "The status was not changed",
  "incident.update": "The incident change was not saved",
  "responder.status": "Your status was not sent",
  "responder.position": "Your position was not sent",
};

function what(type) {
  return WHAT[type] || (type.startsWith("task.") ? "The task change was not saved" : "That was not done");
}

/** The last status change to `status`, from the incident's status history. */
function lastChange(state, status) {
  return [...(state.status_history || [])].reverse().find((h) => h.status === status) || null;
}

/**
 * The sentence for a refusal, derived from `state` (the client's projection):
 * {title, action, derived} with `derived` true when the log explained it.
 * `name(user)` and `clock(ts)` format people and times; `me` is the user id.
 */
export function describeRefusal(state, cmd, error, { name, clock, me }) {
  const fallback = { ...explain(error, cmd.type), derived: false };
  if (!state || !error || (error.code !== "conflict" && error.code !== "not_found")) return fallback;
  const who = (user) => (user === me ? "You" : name(user));
  const said = (title, action) => ({ title, action, retryable: false, derived: true });
  if (state.status === "closed" && cmd.type !== "incident.status") {
    const closed = lastChange(state, "closed");
    if (closed) {
      return said(
        `${what(cmd.type)}: ${who(closed.by)} closed this incident at ${clock(closed.ts)}.`,
        "Nothing more can be posted until a coordinator of the lead organisation reopens it.",
      );
    }
  }
  if (cmd.type === "incident.status" && state.status === cmd.status) {
    const set = lastChange(state, cmd.status);
    if (set) {
      return said(
        `${what(cmd.type)}: ${who(set.by)} had already set it to ${STATUS_WORD[cmd.status] || cmd.status} at ${clock(set.ts)}.`,
        "Nothing else to do.",
      );
    }
  }
  if (cmd.type.startsWith("message.") && cmd.message) {
    const m = state.messages.get(cmd.message);
    if (m?.retracted) {
      return said(
        `${what(cmd.type)}: ${who(m.author.user)} withdrew this message${m.retracted_ts ? ` at ${clock(m.retracted_ts)}` : ""}.`,
        "It no longer needs anything from you.",
      );
    }
    if (cmd.type === "message.ack" && m && me in m.acks) {
      return said(`You had already acknowledged it at ${clock(m.acks[me])} (on another device or tab).`, "Nothing else to do.");
    }
  }
  if (cmd.type.startsWith("task.") && cmd.task) {
    const t = state.tasks.get(cmd.task);
    if (t && t.updated_by && (TASK_FINAL.has(t.status) || t.status !== "open")) {
      return said(
        `${what(cmd.type)}: ${who(t.updated_by)} ${TASK_VERB[t.status] || "changed"} this task at ${clock(t.updated)}.`,
        "The task board shows it as it is now. Act again if it is still needed.",
      );
    }
  }
  return fallback;
}
