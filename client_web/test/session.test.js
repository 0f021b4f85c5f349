// The session clock: silent refresh before the access token expires, the
// "session ends in N minutes" warning, the idle end, and refreshes serialised
// across tabs so a refresh token is never presented twice.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Session, REFRESH_LEAD_MS, WARN_BEFORE_MS } from "../src/session.js";

const MIN = 60_000;

function memoryStore() {
  const data = new Map();
  return {
    data,
    get: async (k) => data.get(k),
    set: async (k, v) => data.set(k, v),
    delete: async (k) => data.delete(k),
    keys: async (prefix) => [...data.keys()].filter((k) => k.startsWith(prefix)),
  };
}

/** A fake server: each refresh token works once; a second use is a reuse. */
function fakeApi(now) {
  let n = 0;
  const api = {
    used: new Set(),
    calls: 0,
    grant() {
      n += 1;
      return {
        token: `access-${n}`,
        expires: Math.floor(now() / 1000) + 15 * 60,
        refresh_token: `refresh-${n}`,
        idle_timeout_s: 30 * 60,
        user: { id: "u_outreach", org: "harbour-shelter", role: "responder", name: "Nia" },
      };
    },
    async login() {
      return api.grant();
    },
    async refresh(token) {
      api.calls += 1;
      if (api.used.has(token)) throw Object.assign(new Error("reused"), { code: "unauthenticated" });
      api.used.add(token);
      await new Promise((r) => setTimeout(r, 1));
      return api.grant();
    },
    async logout() {},
  };
  return api;
}

/** Web Locks for one process: exclusive, in request order. */
function fakeLocks() {
  let tail = Promise.resolve();
  return {
    request(_name, fn) {
      const run = tail.then(fn);
      // The caller gets fn's error through `run`; the queue itself goes on
      // to the next request whatever this one did, as Web Locks do.
      tail = run.then(
        () => undefined,
        () => undefined,
      );
      return run;
    },
  };
}

async function signedIn(t0, deps = {}) {
  let clock = t0;
  const now = () => clock;
  const store = deps.store || memoryStore();
  const api = deps.api || fakeApi(now);
  const session = new Session({ store, api, save: async (_w, write) => (await write(), true), locks: deps.locks });
  session.begin(await session.login("outreach", "pw", t0), t0);
  session.touch(t0);
  return { session, api, store, advance: (ms) => (clock += ms), now };
}

test("nothing is due right after sign-in; the next look is at the refresh time", async () => {
  const t0 = 1_700_000_000_000;
  const { session } = await signedIn(t0);
  const plan = session.plan(t0);
  assert.deepEqual({ ...plan, at: undefined }, { idle: false, warn: null, refresh: false, at: undefined });
  assert.equal(plan.at, session.expires * 1000 - REFRESH_LEAD_MS);
});

test("an active person is refreshed silently before the access token expires", async () => {
  const t0 = 1_700_000_000_000;
  const { session, advance, now } = await signedIn(t0);
  advance(14 * MIN + 1);
  session.touch(now());
  assert.equal(session.plan(now()).refresh, true);
  const before = session.token;
  await session.refresh();
  assert.notEqual(session.token, before);
  assert.equal(session.refreshToken, "refresh-2");
  assert.equal(session.plan(now()).refresh, false);
});

test("an idle session warns with the minutes left, then ends; activity clears the warning", async () => {
  const t0 = 1_700_000_000_000;
  const { session } = await signedIn(t0);
  const idleEnd = t0 + 30 * MIN;
  assert.equal(session.plan(idleEnd - WARN_BEFORE_MS - 1).warn, null);
  assert.equal(session.plan(idleEnd - WARN_BEFORE_MS).warn, 2);
  assert.equal(session.plan(idleEnd - 30_000).warn, 1);
  assert.equal(session.plan(idleEnd).idle, true);
  session.touch(idleEnd - 30_000);
  assert.equal(session.plan(idleEnd).warn, null);
  assert.equal(session.plan(idleEnd).idle, false);
});

test("a refresh does not count as activity", async () => {
  const t0 = 1_700_000_000_000;
  const { session, advance, now } = await signedIn(t0);
  advance(20 * MIN);
  await session.refresh();
  assert.equal(session.lastActive, t0);
  assert.equal(session.plan(t0 + 30 * MIN).idle, true);
});

test("concurrent refreshes in one tab present the refresh token once", async () => {
  const t0 = 1_700_000_000_000;
  const { session, api } = await signedIn(t0);
  await Promise.all([session.refresh(), session.refresh(), session.refresh()]);
  assert.equal(api.calls, 1);
});

test("a second tab adopts the pair the first tab refreshed instead of reusing the token", async () => {
  const t0 = 1_700_000_000_000;
  const store = memoryStore();
  const locks = fakeLocks();
  const first = await signedIn(t0, { store, locks });
  const second = new Session({ store, api: first.api, save: async (_w, write) => (await write(), true), locks });
  second.begin(await store.get("session"), t0);
  await Promise.all([first.session.refresh(), second.refresh()]);
  assert.equal(first.api.calls, 1, "the refresh token went to the server once");
  assert.equal(second.token, first.session.token);
  assert.equal(second.refreshToken, first.session.refreshToken);
});

test("a stored session with an expired access token is refreshable until the idle end", async () => {
  const t0 = 1_700_000_000_000;
  const { session, store } = await signedIn(t0);
  const stored = await store.get("session");
  assert.equal(stored.refresh_token, session.refreshToken);
  const later = await session.stored(t0 + 20 * MIN);
  assert.deepEqual([later.usable, later.refreshable], [false, true]);
  const idle = await session.stored(t0 + 31 * MIN);
  assert.deepEqual([idle.usable, idle.refreshable], [false, false]);
});
