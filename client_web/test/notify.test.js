import { test } from "node:test";
import assert from "node:assert/strict";
import { needAlert, feedAlert } from "../src/ui/alerts.js";
import { keyBytes, pushSupported } from "../src/ui/notify.js";

const now = 1_000_000;

test("a mention, a task or an alarm notifies without a toast; urgent ones toast", () => {
  const base = { kind: "needs_you", incident: "inc_1", seq: 5, ts: now - 1000 };
  assert.deepEqual(needAlert({ ...base, reasons: ["task"], title: "Bring blankets" }, now), {
    key: "inc_1:5",
    incident: "inc_1",
    title: "Task for you",
    body: "Bring blankets",
  });
  assert.equal(needAlert({ ...base, reasons: ["checkin"] }, now).title, "Missed check-in");
  assert.equal(needAlert({ ...base, reasons: ["duress", "escalation"] }, now).title, "Duress alarm");
  assert.equal(needAlert({ ...base, reasons: ["urgent"] }, now), null);
  const capacity = needAlert({ ...base, reasons: ["capacity"], author: { name: "Dana" }, items: { beds: 2 } }, now);
  assert.equal(capacity.title, "Capacity request");
  assert.equal(capacity.body, "Dana asks your organisation for capacity");
  assert.equal(needAlert({ ...base, reasons: ["task"], ts: 0 }, now), null, "a catch-up is old news");
  assert.equal(needAlert({ kind: "incident.changed", ...base }, now), null);
  assert.ok(feedAlert({ ...base, reasons: ["urgent"], message: 5 }, now));
});

test("the server's base64url VAPID key becomes the applicationServerKey bytes", () => {
  const bytes = keyBytes("BAEC_-8");
  assert.deepEqual([...bytes], [4, 1, 2, 255, 239]);
  assert.equal(pushSupported({}, {}), false);
});
