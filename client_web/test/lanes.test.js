// Priority lanes of the outbox (src/lanes.js): lane order, order within a
// lane, causality, coalesced positions; and the Sync outbox using them.

import { test } from "node:test";
import assert from "node:assert/strict";
import { LANES, laneOf, nextToSend, sendOrder, coalesced, resolveRefs } from "../src/lanes.js";
import { Sync, MemoryStore } from "../src/sync.js";

let n = 0;
/** An outbox item as sync.js stores it. */
function item(cmd, extra = {}) {
  n++;
  return { id: `c${n}`, incident: cmd.incident ?? null, cmd: { id: `c${n}`, ...cmd }, order: n, attempts: 0, state: "queued", ...extra };
}
const post = (text, extra = {}) => item({ type: "message.post", incident: "inc_a", text, ...extra });
const ids = (items) => items.map((i) => i.id);

test("the lanes, first to last", () => {
  assert.deepEqual(LANES, ["safety", "ack", "urgent", "task", "chat", "position"]);
  const lane = (cmd) => LANES[laneOf(cmd)];
  assert.equal(lane({ type: "checkin.duress" }), "safety");
  assert.equal(lane({ type: "checkin.ok" }), "safety");
  assert.equal(lane({ type: "message.ack" }), "ack");
  assert.equal(lane({ type: "receipt.mark" }), "ack");
  assert.equal(lane({ type: "message.post", urgent: true }), "urgent");
  assert.equal(lane({ type: "task.accept" }), "task");
  assert.equal(lane({ type: "message.post" }), "chat");
  assert.equal(lane({ type: "message.edit" }), "chat");
  assert.equal(lane({ type: "responder.status" }), "chat");
  assert.equal(lane({ type: "responder.position" }), "position");
});

test("an urgent message queued behind 50 chat messages goes first; the chat keeps its order", () => {
  const chats = Array.from({ length: 50 }, (_, i) => post(`chat ${i}`));
  const urgent = post("Need the shelter now", { urgent: true });
  const order = sendOrder([...chats, urgent]);
  assert.equal(order[0].id, urgent.id);
  assert.deepEqual(ids(order.slice(1)), ids(chats));
});

test("every lane in its order, whatever the queue's order", () => {
  const position = item({ type: "responder.position", incident: "inc_b", lat: 1, lon: 2 });
  const chat = post("hello");
  const task = item({ type: "task.accept", incident: "inc_a", task: 4 });
  const urgent = post("urgent", { urgent: true });
  const ack = item({ type: "message.ack", incident: "inc_a", message: 2 });
  const duress = item({ type: "checkin.duress", incident: "inc_c" });
  assert.deepEqual(ids(sendOrder([position, chat, task, urgent, ack, duress])), ids([duress, ack, urgent, task, chat, position]));
});

test("the one on the wire is resent before anything else", () => {
  const chat = item({ type: "message.post", incident: "inc_a", text: "on the wire" }, { state: "sending" });
  const duress = item({ type: "checkin.duress", incident: "inc_a" });
  assert.equal(nextToSend([chat, duress]).id, chat.id);
});

test("an ack of a message still queued never overtakes the message", () => {
  const chat = post("first");
  const msg = post("Can anyone take him tonight?");
  const ack = item({ type: "message.ack", incident: "inc_a", message: null }, { after: [msg.id], ref: { after: msg.id, field: "message" } });
  const order = sendOrder([chat, msg, ack]);
  // The ack waits for its message, which waits behind the chat before it (same lane).
  assert.deepEqual(ids(order), ids([chat, msg, ack]));
});

test("an edit or retract of a queued message follows it", () => {
  const msg = post("typo");
  const edit = item({ type: "message.edit", incident: "inc_a", message: null, text: "typo fixed" }, { after: [msg.id] });
  const urgentElsewhere = post("urgent elsewhere", { urgent: true, incident: "inc_b" });
  assert.deepEqual(ids(sendOrder([msg, edit, urgentElsewhere])), ids([urgentElsewhere, msg, edit]));
});

test("a task accept or done of a task whose create is queued waits for the create", () => {
  const chat = post("chat first");
  const create = item({ type: "task.create", incident: "inc_a", title: "Check on him" });
  const accept = item({ type: "task.accept", incident: "inc_a", task: null }, { after: [create.id] });
  const done = item({ type: "task.complete", incident: "inc_a", task: null }, { after: [create.id] });
  assert.deepEqual(ids(sendOrder([chat, create, accept, done])), ids([create, accept, done, chat]));
});

test("nothing on an incident whose create is queued goes before the create", () => {
  const chat = post("before");
  const create = item({ type: "incident.create", title: "Bridge", category: "welfare" });
  const post2 = item({ type: "message.post", incident: null, text: "on it" }, { ref: { after: create.id, field: "incident" }, after: [create.id] });
  const duress = item({ type: "checkin.duress", incident: null }, { after: [create.id], ref: { after: create.id, field: "incident" } });
  // The duress alarm is first in its lane but waits for the incident it is on;
  // the create (task lane) goes ahead of the chat, then the alarm, then the chat.
  assert.deepEqual(ids(sendOrder([chat, create, post2, duress])), ids([create, duress, chat, post2]));
});

test("same subject keeps its order across lanes; a status change does not overtake what came before", () => {
  const accept = item({ type: "task.accept", incident: "inc_a", task: 4 });
  const receipt = item({ type: "receipt.mark", incident: "inc_a", task: 4, state: "seen" });
  assert.deepEqual(ids(sendOrder([accept, receipt])), ids([accept, receipt]));
  const chat = post("last words before closing");
  const close = item({ type: "incident.status", incident: "inc_a", status: "closed" });
  assert.deepEqual(ids(sendOrder([chat, close])), ids([chat, close]));
});

test("a head that must wait holds its lane: order within a lane is never broken", () => {
  const msg = post("the message");
  const ack = item({ type: "message.ack", incident: "inc_a", message: null }, { after: [msg.id] });
  const ack2 = item({ type: "message.ack", incident: "inc_b", message: 9 });
  assert.deepEqual(ids(sendOrder([msg, ack, ack2])), ids([msg, ack, ack2]));
});

test("positions are coalesced per incident: only a never-sent one is replaced", () => {
  const a1 = item({ type: "responder.position", incident: "inc_a", lat: 1, lon: 1 });
  const b1 = item({ type: "responder.position", incident: "inc_b", lat: 1, lon: 1 });
  const a0 = item({ type: "responder.position", incident: "inc_a", lat: 0, lon: 0 }, { attempts: 1 });
  const stale = coalesced([a1, b1, a0], { type: "responder.position", incident: "inc_a", lat: 2, lon: 2 });
  assert.deepEqual(ids(stale), [a1.id]);
  assert.deepEqual(coalesced([a1], { type: "message.post", incident: "inc_a" }), []);
});

test("an ack fills the seq or the incident into the commands that named it", () => {
  const msg = post("m");
  const ack = item({ type: "message.ack", incident: "inc_a", message: null }, { ref: { after: msg.id, field: "message" } });
  const create = item({ type: "incident.create" });
  const on = item({ type: "message.post", incident: null, text: "x" }, { ref: { after: create.id, field: "incident" } });
  assert.deepEqual(ids(resolveRefs([ack, on], msg, { seq: 7, incident: "inc_a" })), [ack.id]);
  assert.equal(ack.cmd.message, 7);
  assert.equal(ack.ref, null);
  resolveRefs([on], create, { seq: 1, incident: "inc_new" });
  assert.equal(on.cmd.incident, "inc_new");
  assert.equal(on.incident, "inc_new");
});

// ---- the Sync outbox with its lanes, against a minimal fake socket -----------

function fakeServer() {
  const frames = [];
  let seq = 0;
  const socket = {
    connected: false,
    active: false,
    handlers: new Map(),
    on(ev, fn) {
      this.handlers.set(ev, fn);
    },
    connect() {
      this.connected = this.active = true;
      setTimeout(() => {
        this.handlers.get("connect")?.();
        this.handlers.get("welcome")?.({ v: 1, limits: {} });
      }, 1);
    },
    disconnect() {
      this.connected = this.active = false;
    },
    timeout() {
      return {
        emitWithAck: async (_ev, frame) => {
          if (frame.type === "follow" || frame.type.startsWith("feed.")) return { ok: true, incidents: [], cursor: "c" };
          frames.push(frame);
          if (frame.written_at > Date.now() + 3_600_000) {
            return { ok: false, error: { code: "invalid", retryable: false, message: "written_at", detail: { field: "written_at", reason: "future" } } };
          }
          return { ok: true, incident: frame.incident ?? "inc_new", seq: ++seq, epoch: "e", ts: Date.now(), duplicate: false };
        },
      };
    },
  };
  return { socket, frames };
}

async function until(cond, ms = 2000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("Sync: offline, an urgent post behind 50 chats is sent first, an ack of a queued post after it, with written_at", async () => {
  const { socket, frames } = fakeServer();
  let online = false;
  const sync = new Sync({ io: () => socket, url: "x", store: new MemoryStore(), getToken: () => "t", user: { id: "u" }, online: () => online });
  await sync.start();
  const written = Date.now();
  for (let i = 0; i < 50; i++) await sync.enqueue({ type: "message.post", incident: "inc_a", text: `chat ${i}` });
  const urgent = await sync.enqueue({ type: "message.post", incident: "inc_a", text: "urgent", urgent: true });
  const ack = await sync.enqueue({ type: "message.ack", incident: "inc_a" }, { ref: { after: urgent.id, field: "message" } });
  const clockOff = await sync.enqueue({ type: "message.post", incident: "inc_a", text: "from the future", written_at: Date.now() + 86_400_000 });
  online = true;
  sync.goOnline();
  await until(() => sync.outbox.length === 0);
  assert.equal(frames[0].id, urgent.id);
  assert.equal(frames[1].id, ack.id);
  assert.equal(frames[1].message, 1, "the ack names the seq its message was stored at");
  assert.ok(frames.slice(0, 51).every((f) => f.written_at >= written && f.written_at <= Date.now()));
  // A clock far off is refused: sent again without written_at, same id.
  const retries = frames.filter((f) => f.id === clockOff.id);
  assert.equal(retries.length, 2);
  assert.equal(retries[1].written_at, undefined);
  sync.stop();
});
