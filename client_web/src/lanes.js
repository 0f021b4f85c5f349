// Priority lanes of the outbox (issue 10, item 7): what a phone sends first
// when it comes back online. Pure: no I/O, no clock.
//
// Lanes, first to last:
//   0 safety     check-ins and duress alarms (a person may be in danger)
//   1 ack        acknowledgements and receipts (someone is waiting on them)
//   2 urgent     urgent messages
//   3 task       task changes and incident changes
//   4 chat       messages, edits, retractions, responder status, reviews
//                (a status stays in order with the posts around it:
//                "arrived, nobody answers" then "en route")
//   5 position   position reports (coalesced: only the latest per incident)
//
// An urgent message queued behind 50 chat messages goes first. But causality
// holds: a command never overtakes an earlier queued one it depends on, and
// within a lane the order is the person's. `dependsOn` says when:
//   - it was queued naming the earlier one (`item.after`: an edit, retract or
//     ack of a message still queued, an accept of a task whose create is
//     queued, anything on an incident whose create is queued; the sender
//     fills the subject's seq or id from the earlier one's ack: `item.ref`);
//   - both are about the same subject (a message, a task, a check-in of one
//     incident): a receipt never overtakes an accept of the same task;
//   - it changes the incident itself (update, status): a close never
//     overtakes what was written on the incident before it.

export const LANES = ["safety", "ack", "urgent", "task", "chat", "position"];

/** The lane (its index in LANES) of a command. */
export function laneOf(cmd) {
  const type = cmd.type;
  if (type.startsWith("checkin.")) return 0;
  if (type === "message.ack" || type === "receipt.mark") return 1;
  if (type === "message.post") return cmd.urgent ? 2 : 4;
  if (type.startsWith("task.") || type.startsWith("incident.")) return 3;
  if (type === "responder.position") return 5;
  return 4;
}

/** What a command is about within its incident, or null: "message:7", "task:4", "checkin". */
function subjectOf(cmd) {
  if (cmd.type.startsWith("checkin.")) return "checkin";
  if (cmd.message != null) return `message:${cmd.message}`;
  if (cmd.task != null) return `task:${cmd.task}`;
  return null;
}

/** Whether `later` must wait until `earlier` (queued before it) is sent. */
export function dependsOn(later, earlier) {
  if (later.after?.includes(earlier.id)) return true;
  if (!later.incident || later.incident !== earlier.incident) return false;
  if (later.cmd.type === "incident.update" || later.cmd.type === "incident.status") return true;
  const subject = subjectOf(later.cmd);
  return subject !== null && subject === subjectOf(earlier.cmd);
}

const open = (item) => item.state === "queued" || item.state === "sending";

/**
 * The item to send next, or null. `items` in the order they were queued.
 * One command is on the wire at a time: one being sent is resent first.
 * Otherwise the first lane whose head may go: a head waits for an earlier
 * item it depends on (which is the head of a later lane, or behind one).
 */
export function nextToSend(items) {
  const pending = items.filter(open);
  const sending = pending.find((i) => i.state === "sending");
  if (sending) return sending;
  const heads = new Map();
  for (const item of pending) {
    const lane = laneOf(item.cmd);
    if (!heads.has(lane)) heads.set(lane, item);
  }
  let best = null;
  for (const [lane, head] of heads) {
    if (best !== null && laneOf(best.cmd) < lane) continue;
    if (pending.some((e) => e.order < head.order && dependsOn(head, e))) continue;
    best = head;
  }
  return best;
}

/** The order `nextToSend` would send `items` in, if every send succeeded (tests, display). */
export function sendOrder(items) {
  const left = items.map((i) => ({ ...i }));
  const out = [];
  for (let next = nextToSend(left); next; next = nextToSend(left)) {
    out.push(next);
    next.state = "sent";
  }
  return out;
}

/** Queued, never-sent position reports a new one of the same incident replaces. */
export function coalesced(items, cmd) {
  if (cmd.type !== "responder.position") return [];
  return items.filter(
    (i) =>
      i.cmd.type === "responder.position" &&
      i.incident === (cmd.incident ?? null) &&
      i.state === "queued" &&
      i.attempts === 0,
  );
}

/**
 * An acknowledged item's result filled into the items that named it
 * (`ref: {after: id, field}`): the seq for `message`/`task`, the incident id
 * for `incident`. Returns the items changed (to store again).
 */
export function resolveRefs(items, acked, ack) {
  const changed = [];
  for (const item of items) {
    const ref = item.ref;
    if (!ref || ref.after !== acked.id) continue;
    const value = ref.field === "incident" ? ack.incident : ack.seq;
    item.cmd = { ...item.cmd, [ref.field]: value };
    if (ref.field === "incident") item.incident = value;
    item.ref = null;
    changed.push(item);
  }
  return changed;
}
