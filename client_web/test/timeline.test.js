// Differential: the client's projection (src/projection.js), folding the
// envelopes one organisation received in a real server run, equals the
// incident view the server served that organisation (IncidentState.view).
// The recording, tests/fixtures/timeline-joint.json, is shared with pytest
// (tests/unit/test_timeline_differential.py), which also checks that it is
// still what the server's code computes. Re-record it with
// `python -m tests.record_timeline`.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fold, shapeOfState } from "./timeline_shape.js";

const fixture = JSON.parse(
  readFileSync(new URL("../../tests/fixtures/timeline-joint.json", import.meta.url), "utf8"),
);

for (const [org, recorded] of Object.entries(fixture.orgs)) {
  test(`the client's fold of what ${org} receives equals the view it is served`, () => {
    const state = fold(fixture.incident, recorded.envelopes);
    assert.deepEqual(shapeOfState(state), recorded.expected);
  });
}

test("the recording covers every event type, and placeholders for both organisations", () => {
  const kinds = new Set();
  for (const { envelopes } of Object.values(fixture.orgs)) for (const e of envelopes) kinds.add(e.type);
  for (const kind of [
    "incident.created", "incident.updated", "incident.status_changed",
    "message.posted", "message.edited", "message.retracted", "message.acknowledged",
    "task.created", "task.assigned", "task.accepted", "task.declined", "task.started",
    "task.completed", "task.cancelled", "responder.status", "responder.position", "restricted",
  ]) {
    assert.ok(kinds.has(kind), kind);
  }
  for (const { envelopes } of Object.values(fixture.orgs)) {
    assert.ok(envelopes.some((e) => e.type === "restricted"));
  }
});
