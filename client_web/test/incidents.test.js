// The non-DOM parts of the app: which incidents are followed, how states are
// saved (batched, through the persistence tracker), what a list refresh
// forgets (only after reading the whole, paged list), the fold of envelopes,
// the session, and which posts raise an urgent alert.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Incidents, followWanted, MAX_FOLLOWED, STATE_SAVE_MS } from "../src/incidents.js";
import { Session } from "../src/session.js";
import { Persistence } from "../src/persist.js";
import { Positions } from "../src/sync.js";
import { isUrgentAlert, feedAlert, drillTitle, URGENT_FRESH_MS } from "../src/ui/alerts.js";

const quiet = { error: () => {} };

/** The browser store's interface over a Map; `fail` makes writes of matching keys throw. */
class FakeStore {
  constructor() {
    this.kv = new Map();
    this.writes = [];
    this.fail = null;
  }
  async get(key) {
    return this.kv.get(key);
  }
  async set(key, value) {
    this.writes.push(["set", key]);
    if (this.fail?.test(key)) throw new DOMException("full", "QuotaExceededError");
    this.kv.set(key, structuredClone(value));
  }
  async delete(key) {
    this.writes.push(["delete", key]);
    this.kv.delete(key);
  }
  async keys(prefix) {
    return [...this.kv.keys()].filter((k) => k.startsWith(prefix));
  }
}

class FakeSync {
  constructor() {
    this.positions = new Positions();
    this.calls = [];
  }
  follow(id, epoch, seq) {
    this.positions.set(id, epoch, seq);
    this.calls.push(["follow", id, seq]);
  }
  unfollow(id) {
    this.positions.delete(id);
    this.calls.push(["unfollow", id]);
  }
  refollow(ids) {
    this.calls.push(["refollow", ...ids]);
  }
}

function summary(id, updated, status = "active") {
  return { id, updated, status, title: id, seq: 1 };
}

function setup({ pages = [], limits = { max: 50, open: [] } } = {}) {
  const store = new FakeStore();
  const persistence = new Persistence({ log: quiet });
  const events = { forgot: [], ui: 0, failed: [] };
  const api = {
    async incidents() {
      const page = pages.shift();
      if (page instanceof Error) throw page;
      return page;
    },
  };
  const incidents = new Incidents({
    store,
    api,
    save: (what, write) => persistence.track(what, write),
    key: (name) => `u:u_a:${name}`,
    signedIn: () => true,
    followLimits: () => limits,
    forgot: (id) => events.forgot.push(id),
    saveUi: () => events.ui++,
    failed: (err) => events.failed.push(err),
  });
  const sync = new FakeSync();
  incidents.attach(sync);
  return { store, persistence, events, incidents, sync };
}

function env(seq, type = "message.posted", body = { text: `m${seq}` }, ts = 1000 + seq) {
  return {
    v: 1, type, incident: "a", seq, epoch: "e1", ts, cid: `c${seq}`, visibility: null, body,
    actor: { user: "u_b", org: "o1", name: "B" },
  };
}

// ------------------------------------------------------------ follow policy

test("the follow policy takes the most recently updated open incidents, and every open pane", () => {
  const list = [summary("old", 1), summary("new", 3), summary("shut", 9, "closed"), summary("mid", 2)];
  assert.deepEqual(followWanted(list, 2), ["new", "mid"]);
  assert.deepEqual(followWanted(list, 2, ["shut", "new"]), ["new", "mid", "shut"], "panes too, once each");
  assert.deepEqual(followWanted(list, 0, []), []);
  assert.ok(MAX_FOLLOWED.phone < MAX_FOLLOWED.desk, "a phone holds fewer incidents live");
});

test("a list refresh follows what the policy wants, from the positions held", async () => {
  const { incidents, sync } = setup({
    pages: [{ incidents: [summary("a", 2), summary("b", 1), summary("c", 3, "closed")], complete: true }],
    limits: { max: 1, open: ["b"] },
  });
  await incidents.refreshList();
  assert.deepEqual(sync.calls, [["follow", "a", 0], ["follow", "b", 0]]);
  assert.deepEqual([...incidents.states.keys()], ["a", "b"]);
});

// --------------------------------------------------------- list forgetting

test("a refresh forgets an incident only when the whole (paged) list was read", async () => {
  const { incidents, sync, store, events, persistence } = setup({
    pages: [
      { incidents: [summary("a", 2), summary("b", 1)], complete: true },
      { incidents: [summary("a", 3)], complete: false },
      { incidents: [summary("a", 4)], complete: true },
    ],
  });
  await incidents.refreshList();
  assert.deepEqual([...incidents.summaries.keys()], ["a", "b"]);
  await incidents.refreshList(); // cut short: b may simply be on a page not read
  assert.deepEqual([...incidents.summaries.keys()], ["a", "b"]);
  assert.ok(incidents.states.has("b"));
  await incidents.refreshList();
  assert.deepEqual([...incidents.summaries.keys()], ["a"]);
  assert.ok(!incidents.states.has("b"));
  assert.deepEqual(events.forgot, ["b"]);
  assert.deepEqual(sync.calls.at(-1), ["unfollow", "b"]);
  assert.equal(await persistence.idle(), "saved");
  assert.ok(store.writes.some(([op, key]) => op === "delete" && key === "u:u_a:state:b"));
  assert.deepEqual(store.kv.get("u:u_a:list").map((s) => s.id), ["a"]);
});

test("a failed refresh forgets nothing and reports the error", async () => {
  const { incidents, events } = setup({
    pages: [{ incidents: [summary("a", 1)], complete: true }, new Error("network")],
  });
  await incidents.refreshList();
  await incidents.refreshList();
  assert.deepEqual([...incidents.summaries.keys()], ["a"]);
  assert.equal(events.failed.length, 1);
  assert.equal(incidents.refreshing, false, "the next refresh may run");
});

// ------------------------------------------------- state saving, batched

test("states are saved batched: one write per changed state, with read markers and layout", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { incidents, store, events, persistence } = setup();
  incidents.ensureLoaded("a");
  incidents.ensureLoaded("b");
  incidents.fold("a", [env(1), env(2)]);
  incidents.fold("a", [env(3)]);
  incidents.fold("b", [{ ...env(1), incident: "b" }]);
  assert.equal(store.writes.length, 0, "nothing written before the batch is due");
  t.mock.timers.tick(STATE_SAVE_MS);
  assert.equal(await persistence.idle(), "saved");
  const sets = store.writes.filter(([op]) => op === "set").map(([, key]) => key);
  assert.deepEqual(sets.sort(), ["u:u_a:read", "u:u_a:state:a", "u:u_a:state:b"]);
  assert.equal(events.ui, 1, "the layout is saved with them");
  assert.equal(store.kv.get("u:u_a:state:a").seq, 3);
  t.mock.timers.tick(STATE_SAVE_MS);
  assert.equal(store.writes.length, 3, "nothing changed, nothing written");
});

test("flushing writes the pending batch at once (page hide, sign-out)", async () => {
  const { incidents, store, persistence } = setup();
  incidents.ensureLoaded("a");
  incidents.fold("a", [env(1)]);
  incidents.saveStates.flush();
  assert.equal(await persistence.idle(), "saved");
  assert.equal(store.kv.get("u:u_a:state:a").seq, 1);
});

test("a state that cannot be saved shows as not saved, and is saved by the next batch", async () => {
  const { incidents, store, persistence } = setup();
  store.fail = /state:a/;
  incidents.ensureLoaded("a");
  incidents.fold("a", [env(1)]);
  incidents.saveStates.flush();
  assert.equal(await persistence.idle(), "failed");
  assert.match(persistence.describe(), /incident a: QuotaExceededError/);
  store.fail = null;
  incidents.fold("a", [env(2)]);
  incidents.saveStates.flush();
  assert.equal(await persistence.idle(), "saved");
  assert.equal(store.kv.get("u:u_a:state:a").seq, 2);
});

test("read markers move forward only, and are saved with the states", async () => {
  const { incidents, store, persistence } = setup();
  incidents.ensureLoaded("a");
  incidents.fold("a", [env(1), env(2)]);
  assert.equal(incidents.markRead("a"), true);
  assert.equal(incidents.markRead("a"), false, "already read up to seq 2");
  incidents.saveStates.flush();
  await persistence.idle();
  assert.deepEqual([...store.kv.get("u:u_a:read")], [["a", 2]]);
});

test("restore brings back states, the list, read markers and the saved layout", async () => {
  const first = setup();
  first.incidents.ensureLoaded("a");
  first.incidents.fold("a", [env(1)]);
  first.incidents.read.set("a", 1);
  first.incidents.saveStates.flush();
  await first.persistence.idle();
  await first.store.set("u:u_a:ui", { panes: ["a"], active: "a" });
  const second = setup();
  second.store.kv = first.store.kv;
  await second.incidents.restore();
  assert.equal(second.incidents.states.get("a").seq, 1);
  assert.equal(second.incidents.read.get("a"), 1);
  assert.deepEqual(second.incidents.savedUi.panes, ["a"]);
});

// -------------------------------------------------------------------- fold

test("the fold skips duplicates, stops at a gap and refollows from its own state", () => {
  const { incidents, sync } = setup();
  incidents.ensureLoaded("a");
  const seen = [];
  incidents.fold("a", [env(1), env(2)], (s, e, live) => seen.push([e.seq, live]));
  incidents.fold("a", [env(2), env(3), env(5), env(6)], (s, e, live) => seen.push([e.seq, live]));
  assert.deepEqual(seen, [[1, false], [2, false], [3, true]], "a first backlog is not live");
  assert.deepEqual(sync.calls.at(-1), ["refollow", "a"]);
  assert.deepEqual(sync.positions.get("a"), { epoch: "e1", seq: 3 });
  assert.equal(incidents.fold("zzz", [env(1)]), false, "an incident not held");
});

test("a resync starts the incident over from seq 0 in the new epoch", () => {
  const { incidents } = setup();
  incidents.ensureLoaded("a");
  incidents.fold("a", [env(1)]);
  incidents.resync("a", "e2", "resync_required");
  assert.equal(incidents.states.get("a").seq, 0);
  assert.equal(incidents.states.get("a").epoch, "e2");
});

// ----------------------------------------------------------------- session

test("a stored session close to its end is not started", async () => {
  const store = new FakeStore();
  const session = new Session({ store, api: {}, save: (w, write) => write() });
  const now = 1_000_000_000_000;
  await store.set("session", { token: "t", expires: now / 1000 + 30, user: {} });
  assert.equal((await session.stored(now)).usable, false);
  await store.set("session", { token: "t", expires: now / 1000 + 3600, user: {} });
  assert.equal((await session.stored(now)).usable, true);
});

test("sign-out erases this person's data and the session, through the tracker", async () => {
  const store = new FakeStore();
  const persistence = new Persistence({ log: quiet });
  const api = { login: async () => ({ token: "t", expires: 9e9, user: { id: "u_a", org: "o", role: "responder", name: "A" } }) };
  const session = new Session({ store, api, save: (what, write) => persistence.track(what, write) });
  session.begin(await session.login("a", "pw"));
  assert.equal(session.coordinator, false);
  await store.set("u:u_a:state:x", { id: "x" });
  await store.set("u:u_b:state:y", { id: "y" });
  assert.equal(await session.erase(), true);
  assert.deepEqual([...store.kv.keys()], ["u:u_b:state:y"]);
});

// ------------------------------------------------------------------ alerts

test("only a live, recent, urgent post by someone else raises an alert", () => {
  const me = { id: "u_me" };
  const now = 5_000_000;
  const urgent = { ...env(4, "message.posted", { text: "!", urgent: true }), ts: now - 1000 };
  assert.equal(isUrgentAlert(urgent, me, true, now), true);
  assert.equal(isUrgentAlert(urgent, me, false, now), false, "backlog");
  assert.equal(isUrgentAlert({ ...urgent, ts: now - URGENT_FRESH_MS }, me, true, now), false, "old");
  assert.equal(isUrgentAlert({ ...urgent, actor: { user: "u_me" } }, me, true, now), false, "mine");
  assert.equal(isUrgentAlert({ ...urgent, body: { text: "." } }, me, true, now), false, "not urgent");
});

// ------------------------------------------------------------- the feed

test("feed entries keep the list current: opened joins and is followed, changed patches", async () => {
  const { incidents, sync, persistence } = setup({ limits: { max: 5, open: [] } });
  const opened = {
    kind: "incident.opened", incident: "n", seq: 1, ts: 10, cursor: "c1",
    summary: { ...summary("n", 10), title: "New one", priority: "high", orgs: ["o1"] },
  };
  assert.deepEqual([...incidents.applyFeed([opened])], ["n"]);
  assert.equal(incidents.summaries.get("n").title, "New one");
  assert.deepEqual(sync.calls, [["follow", "n", 0]]);
  const changed = { kind: "incident.changed", incident: "n", seq: 4, ts: 20, changes: { title: "Renamed", orgs_added: ["o2"] } };
  incidents.applyFeed([changed]);
  assert.deepEqual(
    [incidents.summaries.get("n").title, incidents.summaries.get("n").orgs, incidents.summaries.get("n").seq],
    ["Renamed", ["o1", "o2"], 4],
  );
  // An older change (the list read was ahead of it) does not undo a newer title.
  incidents.applyFeed([{ ...changed, seq: 2, changes: { title: "Older" } }]);
  assert.equal(incidents.summaries.get("n").title, "Renamed");
  // A change to an incident the list does not hold is not invented from it.
  assert.equal(incidents.applyFeed([{ ...changed, incident: "unknown" }]).size, 0);
  await persistence.idle();
});

test("a feed entry alerts a new critical incident and an urgent message, recent ones only", () => {
  const now = 100_000_000;
  const critical = { kind: "incident.opened", incident: "n", seq: 1, ts: now - 10, summary: { title: "Fire", priority: "critical" } };
  assert.equal(feedAlert(critical, now).title, "New critical incident — Fire");
  assert.equal(feedAlert({ ...critical, summary: { title: "Cat", priority: "high" } }, now), null);
  const urgent = {
    kind: "needs_you", incident: "n", seq: 7, ts: now - 10, reasons: ["urgent", "mention"],
    message: 7, text: "Need a bed", author: { name: "Dana" },
  };
  assert.deepEqual(feedAlert(urgent, now), {
    key: "n:7", incident: "n", title: "Urgent from Dana", body: "Need a bed", message: 7,
  });
  assert.equal(feedAlert({ ...urgent, ts: now - URGENT_FRESH_MS }, now), null, "a catch-up alerts nothing");
  const task = { kind: "needs_you", incident: "n", seq: 9, ts: now, reasons: ["task"], task: 9, title: "Blankets", author: { name: "Dana" } };
  assert.equal(feedAlert(task, now), null, "tasks and mentions show in the list, not as toasts");
  assert.equal(feedAlert({ ...urgent, reasons: ["mention"] }, now), null);
  assert.equal(feedAlert({ kind: "incident.changed", incident: "n", seq: 3, ts: now }, now), null);
});

test("an exercise's alerts say it is a drill, never a bare alarm (SPEC 24.1, 28)", () => {
  const now = 100_000_000;
  const urgent = {
    kind: "needs_you", incident: "x", seq: 7, ts: now - 10, reasons: ["urgent"], mode: "exercise",
    message: 7, text: "Inject 3: casualty at the gate", author: { name: "Dana" },
  };
  assert.equal(feedAlert(urgent, now).title, "EXERCISE — Urgent from Dana");
  const critical = { kind: "incident.opened", incident: "t", seq: 1, ts: now - 10, mode: "test", summary: { title: "Fire", priority: "critical" } };
  assert.equal(feedAlert(critical, now).title, "TEST — New critical incident — Fire");
  assert.equal(feedAlert({ ...urgent, mode: undefined }, now).title, "Urgent from Dana");
  assert.equal(drillTitle("actual", "Urgent"), "Urgent");
  assert.equal(drillTitle(undefined, "Urgent"), "Urgent");
});
