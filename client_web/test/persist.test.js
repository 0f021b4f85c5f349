// The persistence tracker: failures are kept per thing and shown until that
// thing is saved; idle() is the observable "everything is on disk".

import { test } from "node:test";
import assert from "node:assert/strict";
import { Persistence } from "../src/persist.js";
import { batched } from "../src/dom.js";

const quiet = { error: () => {} };

test("a failed write is recorded, logged and cleared by the next good write of it", async () => {
  const logged = [];
  const p = new Persistence({ log: { error: (...a) => logged.push(a.join(" ")) } });
  assert.equal(p.state, "saved");
  const ok = await p.track("incident a", async () => {
    throw new DOMException("full", "QuotaExceededError");
  });
  assert.equal(ok, false);
  assert.equal(p.state, "failed");
  assert.match(p.describe(), /incident a: QuotaExceededError: full/);
  assert.match(logged[0], /could not save incident a/);
  await p.track("incident b", async () => {});
  assert.equal(p.state, "failed", "another thing saved does not save incident a");
  await p.track("incident a", async () => {});
  assert.equal(p.state, "saved");
  assert.equal(p.describe(), null);
});

test("idle() resolves once no write is in flight", async () => {
  const p = new Persistence({ log: quiet });
  let release;
  const slow = p.track("slow", () => new Promise((r) => (release = r)));
  assert.equal(p.state, "saving");
  let idle = null;
  p.idle().then((s) => (idle = s));
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(idle, null);
  release();
  await slow;
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(idle, "saved");
});

test("batched runs once after the first call, however many calls follow", async () => {
  let runs = 0;
  const run = batched(() => runs++, 30);
  const start = Date.now();
  while (Date.now() - start < 100) {
    run();
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(runs >= 2, `a steady stream still runs it (${runs} runs)`);
  run();
  run.flush();
  const after = runs;
  run.flush();
  assert.equal(runs, after, "flush with nothing due does nothing");
});

test("the last failed write of each thing is retried once the store works again", async () => {
  const p = new Persistence({ log: quiet });
  let full = true;
  const written = [];
  const write = (what) => async () => {
    if (full) throw new DOMException("full", "QuotaExceededError");
    written.push(what);
  };
  await p.track("incident list", write("list"));
  await p.track("layout", write("layout"));
  assert.equal(p.state, "failed");
  full = false;
  await p.track("incident a", write("a")); // any success retries the others
  await p.idle();
  assert.deepEqual(written.sort(), ["a", "layout", "list"]);
  assert.equal(p.state, "saved");
});

test("a retry that fails again keeps the failure and does not loop", async () => {
  const p = new Persistence({ log: quiet });
  let attempts = 0;
  await p.track("list", async () => {
    attempts++;
    throw new Error("still full");
  });
  await p.retryFailed();
  await p.retryFailed();
  assert.equal(attempts, 3);
  assert.equal(p.state, "failed");
});
