// The live channel's rules against a fake Socket.IO server: resume by
// (epoch, seq) after every welcome, duplicates and gaps, the outbox sent in
// order with the same client ids across disconnects, typed errors.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Sync, Positions, MemoryStore } from "../src/sync.js";

const USER = { id: "u_outreach", org: "harbour-shelter", role: "responder", name: "Nia Outreach" };
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

async function until(cond, ms = 2000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await tick(5);
  }
}

/** A fake socket.io-client socket driven by a fake server. */
class FakeSocket {
  constructor(server) {
    this.server = server;
    this.handlers = new Map();
    this.connected = false;
    this.active = false;
  }

  on(ev, fn) {
    if (!this.handlers.has(ev)) this.handlers.set(ev, []);
    this.handlers.get(ev).push(fn);
  }

  removeAllListeners() {
    this.handlers.clear();
  }

  fire(ev, ...args) {
    for (const fn of this.handlers.get(ev) || []) fn(...args);
  }

  connect() {
    this.active = true;
    setTimeout(() => {
      if (!this.active) return;
      if (this.server.refuse) {
        this.active = false;
        const err = new Error(this.server.refuse.message);
        err.data = this.server.refuse;
        this.fire("connect_error", err);
        return;
      }
      this.connected = true;
      this.server.connections++;
      this.fire("connect");
      this.fire("welcome", { v: 1, encoding: "json", limits: {}, user: USER });
    }, 1);
  }

  disconnect() {
    const was = this.connected;
    this.connected = false;
    this.active = false;
    if (was) this.fire("disconnect", "io client disconnect");
  }

  /** The transport dropped (network): socket.io would reconnect by itself. */
  drop() {
    this.connected = false;
    this.fire("disconnect", "transport close");
  }

  timeout(ms) {
    return {
      emitWithAck: (ev, frame) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("operation has timed out")), ms);
          this.server.handle(this, frame, (ack) => {
            clearTimeout(timer);
            resolve(ack);
          });
        }),
    };
  }
}

class FakeServer {
  constructor() {
    this.frames = [];
    this.feedFrames = [];
    this.feedAnswer = null;
    this.connections = 0;
    this.stored = new Map(); // client id -> seq
    this.seq = 10;
    this.behaviour = null;
    this.refuse = null;
    this.heads = new Map();
  }

  handle(socket, frame, reply) {
    if (frame.type === "feed.subscribe") {
      // Kept apart from `frames`: the feed is subscribed after every welcome.
      this.feedFrames.push(structuredClone(frame));
      reply(this.feedAnswer ? this.feedAnswer(frame) : { ok: true, cursor: frame.after || "c-now", kinds: [] });
      return;
    }
    this.frames.push(structuredClone(frame));
    if (this.behaviour) {
      const handled = this.behaviour(frame, reply, socket);
      if (handled) return;
    }
    if (frame.type === "follow") {
      reply({
        ok: true,
        incidents: frame.incidents.map((t) => ({ incident: t.incident, status: "ok", epoch: "e1", head_seq: this.heads.get(t.incident) ?? t.after_seq })),
      });
      return;
    }
    if (frame.type === "unfollow") {
      reply({ ok: true, incidents: frame.incidents });
      return;
    }
    const duplicate = this.stored.has(frame.id);
    if (!duplicate) this.stored.set(frame.id, ++this.seq);
    reply({ ok: true, incident: frame.incident, seq: this.stored.get(frame.id), epoch: "e1", ts: Date.now(), duplicate });
  }
}

function setup({ online = true, ackTimeout = 200 } = {}) {
  const server = new FakeServer();
  let socket = null;
  const store = new MemoryStore();
  const net = { online };
  const sync = new Sync({
    io: () => (socket = new FakeSocket(server)),
    url: "http://test",
    store,
    getToken: () => "token",
    user: USER,
    online: () => net.online,
    ackTimeout,
  });
  return { server, store, sync, net, socket: () => socket };
}

test("Positions: duplicates are dropped, a gap stops that incident's batch only", () => {
  const p = new Positions();
  p.set("a", "e1", 5);
  p.set("b", "e1", 0);
  const env = (incident, seq) => ({ incident, seq, epoch: "e1", type: "message.posted" });
  const { accepted, gaps } = p.accept([env("a", 4), env("a", 5), env("a", 6), env("b", 1), env("a", 8), env("a", 7), env("b", 2), env("c", 1)]);
  assert.deepEqual(accepted.map((e) => `${e.incident}${e.seq}`), ["a6", "b1", "b2"]);
  assert.deepEqual([...gaps], ["a"]);
  assert.deepEqual(p.get("a"), { epoch: "e1", seq: 6 });
  assert.deepEqual(p.targets(["a", "b", "c"]), [
    { incident: "a", after_seq: 6, epoch: "e1" },
    { incident: "b", after_seq: 2, epoch: "e1" },
  ]);
});

test("after every welcome, every incident is followed from its own position", async () => {
  const { server, sync, socket } = setup();
  sync.positions.set("inc_a", "e1", 41);
  sync.positions.set("inc_b", null, 0);
  await sync.start();
  await until(() => server.frames.length === 1);
  assert.deepEqual(server.frames[0], {
    type: "follow",
    incidents: [
      { incident: "inc_a", after_seq: 41, epoch: "e1" },
      { incident: "inc_b", after_seq: 0, epoch: null },
    ],
  });
  assert.equal(sync.status, "online");
  // events advance the positions; a reconnect resumes from there
  const seen = [];
  sync.on("events", (id, envs) => seen.push(...envs.map((e) => `${id}:${e.seq}`)));
  socket().fire("ev", [
    { incident: "inc_a", seq: 42, epoch: "e1", type: "message.posted" },
    { incident: "inc_b", seq: 1, epoch: "e9", type: "incident.created" },
    { incident: "inc_a", seq: 42, epoch: "e1", type: "message.posted" },
  ]);
  assert.deepEqual(seen, ["inc_a:42", "inc_b:1"]);
  socket().drop();
  assert.equal(sync.status, "reconnecting");
  socket().connect();
  await until(() => server.frames.length === 2);
  assert.deepEqual(server.frames[1].incidents, [
    { incident: "inc_a", after_seq: 42, epoch: "e1" },
    { incident: "inc_b", after_seq: 1, epoch: "e9" },
  ]);
  sync.stop();
});

test("a gap re-follows the incident from the last seq held", async () => {
  const { server, sync, socket } = setup();
  sync.positions.set("inc_a", "e1", 3);
  await sync.start();
  await until(() => server.frames.length === 1);
  socket().fire("ev", [{ incident: "inc_a", seq: 6, epoch: "e1", type: "message.posted" }]);
  await until(() => server.frames.length === 2);
  assert.deepEqual(server.frames[1], { type: "follow", incidents: [{ incident: "inc_a", after_seq: 3, epoch: "e1" }] });
  sync.stop();
});

test("resync_required discards the position; not_found drops the incident", async () => {
  const { server, sync } = setup();
  sync.positions.set("inc_old", "e0", 12);
  sync.positions.set("inc_gone", "e1", 2);
  const resyncs = [];
  const gone = [];
  sync.on("resync", (id, epoch) => resyncs.push([id, epoch]));
  sync.on("gone", (id) => gone.push(id));
  let first = true;
  server.behaviour = (frame, reply) => {
    if (frame.type !== "follow" || !first) return false;
    first = false;
    reply({
      ok: true,
      incidents: [
        { incident: "inc_old", status: "resync_required", epoch: "e2", head_seq: 3 },
        { incident: "inc_gone", status: "not_found" },
      ],
    });
    return true;
  };
  await sync.start();
  await until(() => server.frames.length === 2);
  assert.deepEqual(resyncs, [["inc_old", "e2"]]);
  assert.deepEqual(gone, ["inc_gone"]);
  assert.deepEqual(server.frames[1].incidents, [{ incident: "inc_old", after_seq: 0, epoch: "e2" }]);
  assert.equal(sync.positions.has("inc_gone"), false);
  sync.stop();
});

test("offline: commands wait in the outbox, then go in order with their ids", async () => {
  const { server, sync, store, net } = setup({ online: false });
  await sync.start();
  assert.equal(sync.status, "offline");
  const a = await sync.enqueue({ type: "message.post", incident: "inc_a", text: "first" });
  const b = await sync.enqueue({ type: "message.post", incident: "inc_a", text: "second" });
  const c = await sync.enqueue({ type: "responder.status", incident: "inc_a", status: "on_scene" });
  assert.equal(server.frames.length, 0);
  assert.equal((await store.loadOutbox()).length, 3, "kept in the store before anything is sent");
  assert.ok(a.id && b.id && c.id && new Set([a.id, b.id, c.id]).size === 3);
  net.online = true;
  sync.goOnline();
  await until(() => sync.outbox.length === 0);
  const writes = server.frames.filter((f) => f.type !== "follow");
  // Posts and a status share the chat lane (lanes.js): the person's order.
  assert.deepEqual(writes.map((f) => f.id), [a.id, b.id, c.id]);
  assert.deepEqual(writes.map((f) => f.text ?? f.status), ["first", "second", "on_scene"]);
  assert.ok(writes.every((f) => Number.isInteger(f.written_at)), "each carries when it was written");
  assert.equal((await store.loadOutbox()).length, 0);
  sync.stop();
});

test("a lost ack is retried with the same id and stored once", async () => {
  const { server, sync } = setup({ ackTimeout: 50 });
  let swallow = 1;
  server.behaviour = (frame, reply) => {
    if (frame.type === "message.post" && swallow > 0) {
      swallow--;
      // stored, but the ack never arrives
      server.stored.set(frame.id, ++server.seq);
      return true;
    }
    return false;
  };
  const acks = [];
  sync.on("acked", (item, ack) => acks.push(ack));
  await sync.start();
  await until(() => sync.status === "online");
  const item = await sync.enqueue({ type: "message.post", incident: "inc_a", text: "hello" });
  await until(() => acks.length === 1, 3000);
  const posts = server.frames.filter((f) => f.type === "message.post");
  assert.equal(posts.length, 2);
  assert.equal(posts[0].id, item.id);
  assert.equal(posts[1].id, item.id);
  assert.equal(acks[0].duplicate, true);
  assert.equal(server.stored.size, 1);
  sync.stop();
});

test("an outbox survives a reload: a new Sync on the same store sends it", async () => {
  const first = setup({ online: false });
  await first.sync.start();
  const item = await first.sync.enqueue({ type: "message.post", incident: "inc_a", text: "typed offline" });
  first.sync.stop();
  const server = new FakeServer();
  const sync = new Sync({
    io: () => new FakeSocket(server),
    url: "http://test",
    store: first.store,
    getToken: () => "token",
    user: USER,
    online: () => true,
  });
  await sync.start();
  await until(() => sync.outbox.length === 0);
  assert.deepEqual(server.frames.filter((f) => f.type === "message.post").map((f) => f.id), [item.id]);
  sync.stop();
});

test("retryable errors are retried; refusals are reported and the queue moves on", async () => {
  const { server, sync } = setup();
  let unavailable = 1;
  server.behaviour = (frame, reply) => {
    if (frame.type === "task.accept") {
      reply({ ok: false, error: { code: "conflict", message: "already accepted", retryable: false } });
      return true;
    }
    if (frame.type === "message.post" && unavailable > 0) {
      unavailable--;
      reply({ ok: false, error: { code: "unavailable", message: "storage", retryable: true } });
      return true;
    }
    return false;
  };
  const failed = [];
  sync.on("failed", (item, error) => failed.push([item.cmd.type, error.code]));
  await sync.start();
  await until(() => sync.status === "online");
  await sync.enqueue({ type: "task.accept", incident: "inc_a", task: 4 });
  await sync.enqueue({ type: "message.post", incident: "inc_a", text: "after" });
  await until(() => sync.outbox.filter((i) => i.state !== "failed").length === 0, 3000);
  assert.deepEqual(failed, [["task.accept", "conflict"]]);
  const posts = server.frames.filter((f) => f.type === "message.post");
  assert.equal(posts.length, 2);
  assert.equal(posts[0].id, posts[1].id);
  assert.equal(sync.outbox.length, 1);
  assert.equal(sync.outbox[0].state, "failed");
  sync.stop();
});

test("a frame the server would refuse is refused before it is queued", async () => {
  const { sync } = setup({ online: false });
  await sync.start();
  await assert.rejects(sync.enqueue({ type: "message.post", incident: "inc_a", text: "   " }), (err) => err.code === "invalid" && err.field === "text");
  assert.equal(sync.outbox.length, 0);
  sync.stop();
});

test("unauthenticated at connect signs the person out and keeps the outbox", async () => {
  const { server, sync } = setup({ online: false });
  server.refuse = { code: "unauthenticated", message: "expired", retryable: false };
  let signedOut = false;
  sync.on("unauthenticated", () => (signedOut = true));
  await sync.start();
  await sync.enqueue({ type: "message.post", incident: "inc_a", text: "kept" });
  sync.goOnline();
  await until(() => signedOut);
  assert.equal(sync.status, "signed_out");
  assert.equal(sync.outbox.length, 1);
  sync.stop();
});

test("position reports queued offline are coalesced, other commands are not", async () => {
  const { sync } = setup({ online: false });
  await sync.start();
  await sync.enqueuePosition({ type: "responder.position", incident: "inc_a", lat: 51.5, lon: -0.07 });
  await sync.enqueue({ type: "message.post", incident: "inc_a", text: "x" });
  await sync.enqueuePosition({ type: "responder.position", incident: "inc_a", lat: 51.6, lon: -0.08 });
  assert.deepEqual(sync.outbox.map((i) => i.cmd.type), ["message.post", "responder.position"]);
  assert.equal(sync.outbox[1].cmd.lat, 51.6);
  sync.stop();
});

test("a follow answered `unavailable` is retried on the same connection", async () => {
  const { server, sync } = setup();
  sync.positions.set("inc_a", "e1", 4);
  let refusals = 2;
  server.behaviour = (frame, reply) => {
    if (frame.type !== "follow" || refusals === 0) return false;
    refusals--;
    reply({ ok: true, incidents: frame.incidents.map((t) => ({ incident: t.incident, status: "unavailable" })) });
    return true;
  };
  const followed = [];
  sync.on("followed", (r) => followed.push(r.incident));
  await sync.start();
  await until(() => followed.length === 1, 5000);
  assert.equal(server.connections, 1, "no reconnect was needed");
  assert.equal(sync.positions.get("inc_a").seq, 4, "the position is kept, not reset");
  sync.stop();
});

test("a store that fails is reported, and the command is still sent", async () => {
  const failures = [];
  const server = new FakeServer();
  const store = new MemoryStore();
  store.putOutbox = async () => {
    throw new DOMException("the disk is full", "QuotaExceededError");
  };
  const sync = new Sync({
    io: () => new FakeSocket(server),
    url: "http://test",
    store,
    getToken: () => "token",
    user: USER,
    persist: async (what, write) => {
      try {
        await write();
        return true;
      } catch (err) {
        failures.push([what, err.name]);
        return false;
      }
    },
  });
  await sync.start();
  await sync.enqueue({ type: "message.post", incident: "inc_a", text: "still sent" });
  await until(() => sync.outbox.length === 0);
  assert.deepEqual(failures, [["the outbox", "QuotaExceededError"]]);
  assert.deepEqual(server.frames.filter((f) => f.type === "message.post").map((f) => f.text), ["still sent"]);
  sync.stop();
});

test("a shutdown notice shows reconnecting and holds the outbox until the next welcome", async () => {
  const { server, sync, socket } = setup();
  await sync.start();
  await until(() => sync.status === "online");
  socket().fire("notice", { code: "shutdown", message: "stopping" });
  assert.equal(sync.status, "reconnecting");
  const item = await sync.enqueue({ type: "message.post", incident: "inc_a", text: "after the notice" });
  assert.equal(server.frames.filter((f) => f.id === item.id).length, 0, "nothing sent to a stopping server");
  socket().fire("welcome", { v: 1, encoding: "json", limits: {}, user: USER });
  await until(() => sync.outbox.length === 0);
  assert.equal(server.frames.filter((f) => f.id === item.id).length, 1);
  sync.stop();
});

test("a retryable connect refusal is retried; a terminal one is not", async () => {
  const { server, sync } = setup();
  server.refuse = { code: "shutdown", message: "stopping", retryable: true };
  await sync.start();
  await until(() => sync.status === "reconnecting");
  server.refuse = null;
  await until(() => sync.status === "online", 5000);
  assert.equal(server.connections, 1);
  sync.stop();
});

test("a RED message keeps its label and recipients in the outbox, across a reload and a lost ack", async () => {
  const first = setup({ online: false });
  await first.sync.start();
  const cmd = { type: "message.post", incident: "inc_a", text: "only Nia", tlp: "RED", recipients: ["u_outreach"] };
  const item = await first.sync.enqueue(cmd);
  first.sync.stop();
  const server = new FakeServer();
  let swallow = 1;
  server.behaviour = (frame) => {
    if (frame.type === "message.post" && swallow > 0) {
      swallow--;
      server.stored.set(frame.id, ++server.seq);
      return true; // stored, but the ack is lost
    }
    return false;
  };
  const sync = new Sync({
    io: () => new FakeSocket(server),
    url: "http://test",
    store: first.store,
    getToken: () => "token",
    user: USER,
    online: () => true,
    ackTimeout: 50,
  });
  await sync.start();
  await until(() => sync.outbox.length === 0, 3000);
  const posts = server.frames.filter((f) => f.type === "message.post");
  assert.equal(posts.length, 2);
  for (const frame of posts) assert.deepEqual(frame, { ...cmd, id: item.id, written_at: item.cmd.written_at });
  sync.stop();
});

test("the feed: subscribed from now after the first welcome, from its cursor after a reconnect", async () => {
  const { server, sync, socket } = setup();
  const entries = [];
  sync.on("feed", (e) => entries.push(...e));
  await sync.start();
  await until(() => server.feedFrames.length === 1);
  assert.deepEqual(server.feedFrames[0], { type: "feed.subscribe" });
  await until(() => sync.feedCursor === "c-now");
  socket().fire("feed", { entries: [{ kind: "needs_you", incident: "a", seq: 3, cursor: "c-3" }], cursor: "c-5" });
  assert.deepEqual(entries.map((e) => e.cursor), ["c-3"]);
  assert.equal(sync.feedCursor, "c-5");
  socket().drop();
  socket().connect();
  await until(() => server.feedFrames.length === 2);
  assert.deepEqual(server.feedFrames[1], { type: "feed.subscribe", after: "c-5" });
  sync.stop();
});

test("the feed: resync_required goes on from the cursor given and asks for the list again", async () => {
  const { server, sync, socket } = setup();
  let resyncs = 0;
  sync.on("feedResync", () => resyncs++);
  server.feedAnswer = (frame) =>
    frame.after === "stale"
      ? { ok: false, error: { code: "resync_required", retryable: false, detail: { cursor: "c-fresh" } } }
      : { ok: true, cursor: frame.after || "c-now" };
  sync.feedCursor = "stale";
  await sync.start();
  await until(() => server.feedFrames.length === 2);
  assert.equal(server.feedFrames[1].after, "c-fresh");
  assert.equal(resyncs, 1);
  socket().fire("notice", { code: "resync_required", feed: true, detail: { cursor: "c-later" } });
  await until(() => server.feedFrames.length === 3);
  assert.equal(server.feedFrames[2].after, "c-later");
  assert.equal(resyncs, 2);
  sync.stop();
});
