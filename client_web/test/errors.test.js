// Every error code of SPEC section 16 has words for a person and a next step.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { explain } from "../src/errors.js";
import { TASK_TRANSITIONS } from "../src/protocol.js";
import { taskActions } from "../src/projection.js";

const SPEC = readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../protocol/SPEC.md"), "utf8");

/** The error table of SPEC 16: code -> retryable. */
function specCodes() {
  const section = SPEC.slice(SPEC.indexOf("## 16. Errors"), SPEC.indexOf("## 17. Limits"));
  const codes = new Map();
  for (const m of section.matchAll(/^\| `([a-z_]+)` \| (yes|no) \|/gm)) codes.set(m[1], m[2] === "yes");
  return codes;
}

test("the SPEC lists the error codes", () => {
  assert.ok(specCodes().size >= 16);
});

for (const [code, retryable] of specCodes()) {
  test(`error ${code} is explained with what to do next`, () => {
    const why = explain({ code, message: "server words", retryable }, "message.post");
    assert.ok(why.title.length > 10, why.title);
    assert.ok(why.action.length > 10, why.action);
    assert.equal(why.retryable, retryable, `${code}: retryable`);
    assert.ok(!why.title.includes("server words"), "the server's message is not shown as the explanation");
  });
}

test("an unknown code is treated by its retryable flag", () => {
  assert.equal(explain({ code: "brand_new", retryable: true }).retryable, true);
  assert.equal(explain({ code: "brand_new", retryable: false }).retryable, false);
});

test("invalid names the field in words", () => {
  assert.match(explain({ code: "invalid", detail: { field: "text" } }, "message.post").title, /the message/);
});

test("task buttons follow the protocol's state machine", () => {
  const responder = { id: "u_outreach", org: "harbour-shelter", role: "responder" };
  const dispatcher = { id: "u_dispatch", org: "metro-police", role: "dispatcher" };
  const task = (status, assignee = { org: "harbour-shelter", user: null }) => ({ status, assignee });
  assert.deepEqual(taskActions(task("assigned"), responder), ["task.accept", "task.decline"]);
  assert.deepEqual(taskActions(task("accepted"), responder), ["task.start", "task.complete"]);
  assert.deepEqual(taskActions(task("in_progress"), responder), ["task.complete"]);
  assert.deepEqual(taskActions(task("completed"), responder), []);
  assert.deepEqual(taskActions(task("assigned"), dispatcher), ["task.assign", "task.cancel"]);
  assert.deepEqual(taskActions(task("assigned", { org: "harbour-shelter", user: "u_other" }), responder), []);
  for (const [action, from] of Object.entries(TASK_TRANSITIONS)) {
    for (const status of ["open", "assigned", "accepted", "declined", "in_progress"]) {
      const offered = taskActions(task(status), action === "task.cancel" ? dispatcher : responder).includes(action);
      if (offered) assert.ok(from.has(status), `${action} offered from ${status}`);
    }
  }
});
