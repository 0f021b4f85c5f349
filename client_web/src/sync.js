// The live channel: Socket.IO connection, follow/resume by (epoch, seq), the
// outbox of commands, and the connection state shown to the user.
//
// The rules are the protocol's (SPEC sections 5, 7, 11, 12, 15) and the same
// as the Python reference client's (liaison_client/client.py):
// - after every `welcome`, follow every incident we hold from (epoch, last_seq);
// - an envelope at or below last_seq is a duplicate and is dropped; one beyond
//   last_seq + 1 is a gap: the rest of that incident's batch is dropped and the
//   incident is followed again from last_seq;
// - every write gets its client id once, when the person acts, is stored in the
//   outbox (IndexedDB) before it is sent, and is resent with the same id until
//   it is acknowledged; acknowledged or refused for good, it leaves the outbox.
//   One command is in flight at a time, taken by priority lane (lanes.js:
//   duress first, positions last), never ahead of one it depends on, and in
//   the person's order within a lane.
// - every write but a receipt carries `written_at`, when the person made it
//   (SPEC 8.0): a post written offline shows when it was written.

import { PROTOCOL_VERSION, DEFAULT_LIMITS, validateCommand, newClientId } from "./protocol.js";
import { coalesced, nextToSend, resolveRefs } from "./lanes.js";

export const ACK_TIMEOUT_MS = 10_000;
const BACKOFF_MS = [200, 400, 800, 1600, 2000, 4000, 8000];
const FOLLOW_CHUNK = 100;

/** Follow positions and the `ev` processing rules of SPEC 11.3; no I/O. */
export class Positions {
  constructor() {
    /** @type {Map<string, {epoch: string|null, seq: number}>} */
    this.map = new Map();
  }

  has(incident) {
    return this.map.has(incident);
  }

  get(incident) {
    return this.map.get(incident);
  }

  set(incident, epoch, seq) {
    this.map.set(incident, { epoch, seq });
  }

  delete(incident) {
    this.map.delete(incident);
  }

  incidents() {
    return [...this.map.keys()];
  }

  targets(incidents = this.incidents()) {
    return incidents
      .filter((i) => this.map.has(i))
      .map((incident) => {
        const pos = this.map.get(incident);
        return { incident, after_seq: pos.seq, epoch: pos.epoch };
      });
  }

  /**
   * Sort a batch into envelopes to apply (in order) and incidents with a gap.
   * Positions advance as envelopes are accepted.
   */
  accept(batch) {
    const accepted = [];
    const gaps = new Set();
    for (const env of batch) {
      if (!env || typeof env !== "object") continue;
      const pos = this.map.get(env.incident);
      if (!pos || gaps.has(env.incident)) continue;
      if (!Number.isInteger(env.seq) || env.seq <= pos.seq) continue; // duplicate
      if (env.seq !== pos.seq + 1) {
        gaps.add(env.incident);
        continue;
      }
      pos.seq = env.seq;
      pos.epoch = env.epoch;
      accepted.push(env);
    }
    return { accepted, gaps };
  }
}

/** Minimal event emitter. */
class Emitter {
  constructor() {
    this.handlers = new Map();
  }

  on(name, fn) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(fn);
    return () => this.handlers.get(name).delete(fn);
  }

  emit(name, ...args) {
    for (const fn of this.handlers.get(name) || []) {
      try {
        fn(...args);
      } catch (err) {
        console.error(`handler of ${name} failed`, err);
      }
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The default `persist`: run the write, log a failure, never throw. */
async function logFailures(what, write) {
  try {
    await write();
    return true;
  } catch (err) {
    console.error(`could not save ${what} on this device:`, err);
    return false;
  }
}

/**
 * Sync: one per signed-in user.
 *
 * options:
 *   io(url, opts)   socket.io-client's io (injected: tests pass a fake)
 *   url             server origin
 *   store           {loadOutbox(), putOutbox(item), deleteOutbox(id)}
 *   getToken()      the current bearer token
 *   user            {id, org, role, name}
 *   online()        whether the browser thinks it has a network (navigator.onLine)
 *   persist(what, write)  runs one store write and resolves to whether it
 *                   succeeded; a failure must be logged and shown (persist.js).
 *                   The outbox keeps working in memory when the store fails:
 *                   the command is still sent, only a reload would lose it.
 *
 * events: status, welcome, events(incident, envelopes), followed(result),
 *         resync(incident, epoch), gone(incident), outbox(items),
 *         acked(item, ack), failed(item, error), unauthenticated(error), notice(n),
 *         feed(entries), feedResync() (SPEC 22: reload the list)
 */
export class Sync extends Emitter {
  constructor({
    io,
    url,
    store,
    getToken,
    user,
    online = () => true,
    ackTimeout = ACK_TIMEOUT_MS,
    persist = logFailures,
  }) {
    super();
    this.io = io;
    this.url = url;
    this.store = store;
    this.getToken = getToken;
    this.user = user;
    this.isOnline = online;
    this.persist = persist;
    this.ackTimeout = ackTimeout;
    this.positions = new Positions();
    this.limits = DEFAULT_LIMITS;
    this.outbox = [];
    this.status = "offline";
    this.welcomed = false;
    this.pumping = false;
    this.socket = null;
    this.stopped = false;
    this.refollowing = new Set();
    this.followRetries = 0;
    this.lastError = null;
    /** The cross-incident feed (SPEC 22): the cursor after the last `feed` frame. */
    this.feedCursor = null;
  }

  // ---------------------------------------------------------------- lifecycle

  async start() {
    let items = [];
    await this.persist("the outbox (reading it)", async () => {
      items = await this.store.loadOutbox();
    });
    this.outbox = items
      .filter((item) => item.user === this.user.id)
      .sort((a, b) => a.order - b.order);
    for (const item of this.outbox) if (item.state === "sending") item.state = "queued";
    this.emit("outbox", this.outbox);
    this.socket = this.io(this.url, {
      path: "/socket.io/",
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      randomizationFactor: 0.3,
      timeout: 10_000,
      auth: (cb) =>
        cb({ token: this.getToken(), versions: [PROTOCOL_VERSION], encoding: "json" }),
    });
    const s = this.socket;
    s.on("connect", () => {
      this.welcomed = false;
      this.setStatus("connecting");
    });
    s.on("welcome", (data) => this.onWelcome(data));
    s.on("ev", (batch) => this.onEv(batch));
    s.on("feed", (frame) => this.onFeed(frame));
    s.on("notice", (notice) => this.onNotice(notice));
    s.on("disconnect", (reason) => this.onDisconnect(reason));
    s.on("connect_error", (err) => this.onConnectError(err));
    if (this.isOnline()) this.connect();
    else this.setStatus("offline");
  }

  connect() {
    if (this.stopped || !this.socket) return;
    if (!this.socket.connected && !this.socket.active) {
      this.setStatus("connecting");
      this.socket.connect();
    }
  }

  /** The browser says the network is gone: stop trying until it is back. */
  goOffline() {
    if (!this.socket) return;
    this.welcomed = false;
    this.socket.disconnect();
    this.setStatus("offline");
  }

  goOnline() {
    if (this.status === "offline" || !this.socket?.connected) this.connect();
  }

  stop() {
    this.stopped = true;
    this.welcomed = false;
    this.socket?.disconnect();
    this.socket?.removeAllListeners?.();
    this.socket = null;
    this.setStatus("offline");
  }

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.emit("status", status);
  }

  // ------------------------------------------------------------ socket events

  async onWelcome(data) {
    this.welcome = data;
    this.limits = { ...DEFAULT_LIMITS, ...(data?.limits || {}) };
    this.welcomed = true;
    this.lastError = null;
    this.setStatus("online");
    // The feed first: a list read after its cursor was taken misses nothing.
    await this.subscribeFeed();
    this.emit("welcome", data);
    // Resume every incident we hold, then send what waited in the outbox.
    try {
      await this.followNow(this.positions.incidents());
    } catch (err) {
      this.followFailed(this.positions.incidents(), err);
    }
    this.pump();
  }

  onDisconnect(reason) {
    this.welcomed = false;
    if (this.stopped) return;
    if (reason === "io client disconnect") {
      this.setStatus("offline");
      return;
    }
    this.setStatus(this.isOnline() ? "reconnecting" : "offline");
    if (reason === "io server disconnect") {
      // A server-initiated disconnect is not retried by socket.io (SPEC 15).
      setTimeout(() => this.connect(), 1000 + Math.random() * 1000);
    }
  }

  onConnectError(err) {
    const data = err?.data;
    if (data && typeof data === "object" && data.code) {
      this.lastError = data;
      if (data.code === "unauthenticated") {
        this.setStatus("signed_out");
        this.emit("unauthenticated", data);
        return;
      }
      if (data.retryable) {
        // A server that is stopping or cannot serve right now: try again
        // (socket.io does not retry a refused connect by itself).
        this.setStatus(this.isOnline() ? "reconnecting" : "offline");
        setTimeout(() => this.connect(), 1000 + Math.random() * 2000);
        return;
      }
      // Refused for good (version, encoding): do not hammer the server.
      this.setStatus("refused");
      this.emit("refused", data);
      return;
    }
    this.setStatus(this.isOnline() ? "reconnecting" : "offline");
  }

  onNotice(notice) {
    // slow_consumer, shutdown: the server ends the transport; socket.io
    // reconnects and the next welcome resumes from our own positions. Until
    // then nothing is sent here: the person sees "reconnecting", not "online"
    // (SPEC 15). Unknown codes: ignored.
    if (!notice || typeof notice !== "object") return;
    if (notice.code === "shutdown" || notice.code === "slow_consumer") {
      this.welcomed = false;
      this.setStatus("reconnecting");
    }
    if (notice.code === "resync_required" && notice.feed) this.feedResync(notice.detail);
    this.emit("notice", notice);
  }

  // --------------------------------------------------------------------- feed

  /**
   * Follow the feed from our cursor (none yet: from now). Frames may come
   * before the ack: the cursor is taken from the ack only if none came.
   */
  async subscribeFeed() {
    const after = this.feedCursor;
    try {
      const ack = await this.call(after ? { type: "feed.subscribe", after } : { type: "feed.subscribe" });
      if (ack?.ok) {
        if (this.feedCursor === after) this.feedCursor = ack.cursor;
      } else if (ack?.error?.code === "resync_required") {
        this.feedResync(ack.error.detail);
      } else {
        console.warn("feed subscription refused:", ack?.error?.code);
      }
    } catch (err) {
      // Disconnected meanwhile: the next welcome subscribes again.
      console.warn("feed subscription not confirmed:", err?.message || err);
    }
  }

  onFeed(frame) {
    if (!frame || !Array.isArray(frame.entries)) return;
    this.feedCursor = frame.cursor || this.feedCursor;
    if (frame.entries.length) this.emit("feed", frame.entries);
  }

  /** Our cursor cannot be served: go on from the one given, after reloading the list. */
  feedResync(detail) {
    this.feedCursor = detail?.cursor || null;
    this.emit("feedResync");
    if (this.welcomed) this.subscribeFeed();
  }

  onEv(batch) {
    if (!Array.isArray(batch)) return;
    const { accepted, gaps } = this.positions.accept(batch);
    if (accepted.length) {
      const byIncident = new Map();
      for (const env of accepted) {
        if (!byIncident.has(env.incident)) byIncident.set(env.incident, []);
        byIncident.get(env.incident).push(env);
      }
      for (const [incident, envs] of byIncident) this.emit("events", incident, envs);
    }
    if (gaps.size) this.refollow([...gaps]);
  }

  async refollow(incidents) {
    const fresh = incidents.filter((i) => !this.refollowing.has(i));
    if (!fresh.length) return;
    fresh.forEach((i) => this.refollowing.add(i));
    try {
      await this.followNow(fresh);
    } catch (err) {
      this.followFailed(fresh, err);
    } finally {
      fresh.forEach((i) => this.refollowing.delete(i));
    }
  }

  // ------------------------------------------------------------------ follows

  /**
   * A follow did not get through. Disconnected: the next welcome follows
   * everything again. Still connected (the server was briefly unavailable):
   * try again with back-off, or the incident would stay silent on a
   * connection that looks healthy.
   */
  followFailed(incidents, err) {
    console.warn(`follow of ${incidents.length} incident(s) failed:`, err?.message || err);
    if (!this.welcomed || !this.socket?.connected || !incidents.length) return;
    const attempt = ++this.followRetries;
    const delay = BACKOFF_MS[Math.min(attempt - 1, BACKOFF_MS.length - 1)];
    setTimeout(() => {
      const held = incidents.filter((i) => this.positions.has(i));
      if (this.welcomed && held.length) this.refollow(held);
    }, delay);
  }

  /** Hold a position for an incident and follow it (now if connected, else after welcome). */
  async follow(incident, epoch = null, seq = 0) {
    this.positions.set(incident, epoch, seq);
    if (this.welcomed) {
      try {
        await this.followNow([incident]);
      } catch (err) {
        this.followFailed([incident], err);
      }
    }
  }

  async unfollow(incident) {
    this.positions.delete(incident);
    if (this.welcomed) {
      try {
        await this.call({ type: "unfollow", incidents: [incident] });
      } catch (err) {
        // a new connection has no follows anyway
        console.warn(`unfollow of ${incident} not confirmed:`, err?.message || err);
      }
    }
  }

  async followNow(incidents) {
    const targets = this.positions.targets(incidents);
    for (let i = 0; i < targets.length; i += FOLLOW_CHUNK) {
      const chunk = targets.slice(i, i + FOLLOW_CHUNK);
      const ack = await this.call({ type: "follow", incidents: chunk });
      if (!ack?.ok) throw new Error(ack?.error?.code || "follow failed");
      const retry = [];
      for (const result of ack.incidents || []) {
        if (result.status === "unavailable") retry.push(result.incident);
        else this.onFollowResult(result);
      }
      if (retry.length) this.followFailed(retry, new Error("unavailable"));
      else this.followRetries = 0;
    }
  }

  onFollowResult(result) {
    const pos = this.positions.get(result.incident);
    if (!pos) return;
    if (result.status === "ok") {
      if (!pos.epoch) pos.epoch = result.epoch ?? null;
      this.emit("followed", result);
    } else if (result.status === "resync_required" || result.status === "out_of_range") {
      // Our position belongs to a log that no longer exists (or a restored
      // backup): discard and start over from 0 in the returned epoch.
      this.positions.set(result.incident, result.epoch ?? null, 0);
      this.emit("resync", result.incident, result.epoch ?? null, result.status);
      this.refollow([result.incident]);
    } else {
      this.positions.delete(result.incident);
      this.emit("gone", result.incident);
    }
  }

  // ----------------------------------------------------------------- commands

  /** One command with an ack, on the live connection. Rejects when not connected. */
  call(frame) {
    const s = this.socket;
    if (!s || !s.connected || !this.welcomed) return Promise.reject(new Error("not connected"));
    return s.timeout(this.ackTimeout).emitWithAck("cmd", frame);
  }

  /**
   * Queue a write. The client id is assigned here, once; the item is stored
   * before anything is sent. Throws CommandInvalid if the frame would be refused.
   *
   * options.after: client ids of queued commands this one must follow;
   * options.ref: {after, field}: this command is about what the queued
   * command `after` creates; its `field` (message, task: the seq; incident:
   * the id) is filled from that command's ack before it is sent.
   */
  async enqueue(cmd, { after = [], ref = null } = {}) {
    const now = Date.now();
    const frame = { ...cmd, id: cmd.id || newClientId() };
    if (frame.type !== "receipt.mark" && frame.written_at == null) frame.written_at = now;
    // A subject still to be created is validated with a stand-in.
    validateCommand(ref ? { ...frame, [ref.field]: ref.field === "incident" ? "inc_pending" : 1 } : frame, this.limits);
    if (ref) frame[ref.field] = null;
    const item = {
      id: frame.id,
      user: this.user.id,
      incident: frame.incident ?? null,
      cmd: frame,
      order: now * 1000 + (this.outbox.length % 1000),
      created: now,
      attempts: 0,
      state: "queued",
      error: null,
      after: [...new Set([...after, ...(ref ? [ref.after] : [])])],
      ref,
    };
    const last = this.outbox[this.outbox.length - 1];
    if (last && item.order <= last.order) item.order = last.order + 1;
    // Positions are coalesced: only the latest per incident waits (lanes.js).
    for (const stale of coalesced(this.outbox, frame)) await this.drop(stale.id);
    await this.persist("the outbox", () => this.store.putOutbox(item));
    this.outbox.push(item);
    this.emit("outbox", this.outbox);
    this.pump();
    return item;
  }

  /** A position report: replaces a queued, never-sent one of the same incident. */
  async enqueuePosition(cmd) {
    return this.enqueue(cmd);
  }

  queued() {
    return this.outbox.filter((i) => i.state !== "failed");
  }

  async drop(id) {
    const idx = this.outbox.findIndex((i) => i.id === id);
    if (idx < 0) return;
    this.outbox.splice(idx, 1);
    await this.persist("the outbox", () => this.store.deleteOutbox(id));
    this.emit("outbox", this.outbox);
  }

  /** Send what is queued, one at a time, in order, until empty or disconnected. */
  async pump() {
    if (this.pumping) return;
    this.pumping = true;
    let failures = 0;
    try {
      for (;;) {
        if (!this.welcomed || !this.socket?.connected) return;
        const item = nextToSend(this.outbox);
        if (!item) return;
        if (item.ref) {
          // What it is about was never created (refused, or dropped).
          await this.refuse(item, { code: "conflict", retryable: false, message: "it depended on an action that was not sent" });
          continue;
        }
        item.state = "sending";
        item.attempts++;
        this.emit("outbox", this.outbox);
        let ack;
        try {
          ack = await this.call(item.cmd);
        } catch (err) {
          // No ack (timeout or disconnect): resend the same frame, same id.
          console.warn(`no answer to ${item.cmd.type} ${item.id}; resending:`, err?.message || err);
          item.state = "queued";
          this.emit("outbox", this.outbox);
          if (!this.socket?.connected) return;
          await sleep(BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)]);
          continue;
        }
        if (ack?.ok) {
          failures = 0;
          for (const next of resolveRefs(this.outbox, item, ack)) {
            await this.persist("the outbox", () => this.store.putOutbox(next));
          }
          await this.drop(item.id);
          this.emit("acked", item, ack);
          continue;
        }
        const error = ack?.error || { code: "internal", retryable: true, message: "no answer" };
        if (error.detail?.field === "written_at" && item.cmd.written_at != null) {
          // This device's clock is far off: send it again without the time it
          // was written rather than lose it (SPEC 8.0). Same id.
          const { written_at: _dropped, ...cmd } = item.cmd;
          item.cmd = cmd;
          item.state = "queued";
          await this.persist("the outbox", () => this.store.putOutbox(item));
          continue;
        }
        if (error.retryable) {
          item.state = "queued";
          item.error = error;
          this.emit("outbox", this.outbox);
          await sleep(BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)]);
          continue;
        }
        await this.refuse(item, error);
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Refused for good: it will not succeed unchanged. Keep it visible
   * (failed) so the person sees what was not sent and why.
   */
  async refuse(item, error) {
    item.state = "failed";
    item.error = error;
    await this.persist("the outbox", () => this.store.putOutbox(item));
    this.emit("outbox", this.outbox);
    this.emit("failed", item, error);
  }
}

/** An in-memory outbox store (tests, and browsers without IndexedDB). */
export class MemoryStore {
  constructor() {
    this.items = new Map();
  }

  async loadOutbox() {
    return [...this.items.values()].map((i) => structuredClone(i));
  }

  async putOutbox(item) {
    this.items.set(item.id, structuredClone(item));
  }

  async deleteOutbox(id) {
    this.items.delete(id);
  }
}
