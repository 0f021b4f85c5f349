// The shared golden vectors (protocol/vectors/*.json), checked by the JS client:
// command validation, envelope decoding (JSON and msgpack), the hash chain,
// and the projection of the envelopes as each organisation receives them.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { decode } from "@msgpack/msgpack";
import { validateCommand, CommandInvalid, COMMAND_TYPES } from "../src/protocol.js";
import { verifyChain, canon, canonFloat, sha256hex, digestContent, eventDigest } from "../src/chain.js";
import { emptyState, apply, replayState } from "../src/projection.js";
import { reviewsView } from "../src/reviews.js";

const VECTORS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../protocol/vectors");
const load = (name) => JSON.parse(readFileSync(path.join(VECTORS, name), "utf8"));
const COMMANDS = load("commands.json");
const ENVELOPES = load("envelopes.json");
const singles = ENVELOPES.filter((v) => !Array.isArray(v.value)).map((v) => v.value);
const fullView = singles.filter((e) => e.type !== "restricted");
const shelterView = singles.filter((e) => !(e.seq === 3 && e.type !== "restricted"));

test("every command type has a valid vector", () => {
  const covered = new Set(COMMANDS.filter((v) => v.expect.type).map((v) => v.expect.type));
  assert.deepEqual([...covered].sort(), [...COMMAND_TYPES].sort());
});

for (const vector of COMMANDS) {
  test(`command vector: ${vector.name}`, () => {
    if (vector.expect.type) {
      assert.equal(validateCommand(vector.frame), vector.expect.type);
      return;
    }
    assert.throws(
      () => validateCommand(vector.frame),
      (err) => {
        assert.ok(err instanceof CommandInvalid, String(err));
        assert.equal(err.code, vector.expect.error);
        if (vector.expect.field !== undefined) assert.equal(err.field, vector.expect.field);
        return true;
      },
    );
  });
}

for (const vector of ENVELOPES) {
  test(`envelope vector decodes: ${vector.name}`, () => {
    assert.deepEqual(JSON.parse(vector.json), vector.value);
    const bytes = Uint8Array.from(Buffer.from(vector.msgpack_hex, "hex"));
    assert.deepEqual(decode(bytes), vector.value);
  });
}

const SEQS = Array.from({ length: 18 }, (_, i) => i + 1);

test("the vectors form one incident, seq 1-18, in the full and the shelter view", () => {
  assert.deepEqual(fullView.map((e) => e.seq), SEQS);
  assert.deepEqual(shelterView.map((e) => e.seq), SEQS);
  assert.equal(shelterView[2].type, "restricted");
  assert.deepEqual(Object.keys(shelterView[2]).sort(), ["digest", "epoch", "hash", "incident", "seq", "type", "v"]);
});

test("hash chain verifies in both views, and a change is caught at its seq", async () => {
  assert.equal(await verifyChain(fullView), null);
  assert.equal(await verifyChain(shelterView), null);
  const tampered = structuredClone(fullView);
  tampered[3].body.title = "Something else";
  assert.equal(await verifyChain(tampered), 4);
  const reordered = [fullView[0], fullView[2], fullView[1]];
  assert.equal(await verifyChain(reordered), 3);
});

test("each digest commits to the salt and the canonical content (rule 1 without a salt)", async () => {
  for (const e of fullView) assert.equal(await eventDigest(e), e.digest, `seq ${e.seq}`);
  // seq 1-2 predate salts (rule 1); seq 3 on are salted (rule 2).
  assert.deepEqual(fullView.map((e) => "salt" in e), SEQS.map((seq) => seq > 2));
  for (const e of fullView.slice(0, 2)) assert.equal(await sha256hex(canon(digestContent(e))), e.digest);
  for (const e of fullView.slice(2)) assert.notEqual(await sha256hex(canon(digestContent(e))), e.digest);
});

test("a placeholder carries no salt and no time, and a wrong salt is caught", async () => {
  const ph = shelterView[2];
  assert.equal(ph.salt, undefined);
  assert.equal(ph.ts, undefined);
  const wrongSalt = structuredClone(fullView);
  wrongSalt[2].salt = "00".repeat(32);
  assert.equal(await verifyChain(wrongSalt), 3);
});

test("canonical floats follow orjson", () => {
  assert.equal(canonFloat(12), "12.0");
  assert.equal(canonFloat(51.5), "51.5");
  assert.equal(canonFloat(-0.0754), "-0.0754");
  assert.equal(canonFloat(0.00001), "0.00001");
  assert.equal(canonFloat(1e-6), "1e-6");
  assert.equal(canonFloat(1.5e-7), "1.5e-7");
  assert.equal(canonFloat(-0), "-0.0");
  assert.equal(canon({ b: 1, a: { lat: 12, n: 12 } }), '{"a":{"lat":12.0,"n":12},"b":1}');
});

test("the ev batch vector is an array of envelopes with a placeholder", () => {
  const batch = ENVELOPES.find((v) => Array.isArray(v.value)).value;
  assert.deepEqual(batch.map((e) => e.seq), [2, 3, 4]);
  assert.equal(batch[1].type, "restricted");
});

test("the shelter's projection never holds the police-only note", () => {
  const s = emptyState(shelterView[0].incident);
  for (const e of shelterView) apply(s, e);
  assert.equal(s.seq, SEQS.length);
  assert.equal(s.restricted, 1);
  const police = fullView[2];
  assert.ok(police.visibility && police.visibility.length);
  assert.equal(s.messages.has(3), false);
  const dump = JSON.stringify([...s.messages.values(), ...s.tasks.values(), ...s.responders.values()]);
  assert.equal(dump.includes(police.body.text), false);
  // the police see it
  const p = replayState(fullView[0].incident, fullView);
  assert.equal(p.messages.get(3).text, police.body.text);
});

test("the projection follows SPEC 10 on the vectors", () => {
  const s = replayState(fullView[0].incident, fullView);
  assert.equal(s.title, fullView[0].body.title);
  assert.deepEqual(s.orgs, fullView[0].body.orgs);
  assert.equal(s.messages.get(2).urgent, true);
  const task = s.tasks.get(4);
  assert.equal(task.status, "accepted");
  assert.equal(task.assignee.org, fullView[3].body.assignee.org);
  const responder = s.responders.get(fullView[5].actor.user);
  assert.equal(responder.position.lat, fullView[5].body.position.lat);
  assert.equal(responder.position_ts, fullView[5].ts);
  // SPEC 22: a receipt and an escalation on message 2, a check-in missed,
  // raised to duress and resolved.
  const urgent = s.messages.get(2);
  assert.deepEqual(urgent.receipts, { delivered: { u_outreach: fullView[6].ts } });
  assert.deepEqual(urgent.escalations.map((e) => e.seq), [8]);
  const checkin = s.checkins.get(9);
  assert.equal(checkin.status, "resolved");
  assert.deepEqual(checkin.alarm, { seq: 11, type: "checkin.duress", ts: fullView[10].ts });
  assert.equal(s.openCheckins.size, 0);
  assert.equal(s.status, "closed");
  const { reviews, open_actions } = reviewsView(s, fullView[14].ts);
  assert.equal(reviews.length, 1);
  assert.equal(reviews[0].org, fullView[13].body.org);
  assert.equal(reviews[0].rating, fullView[13].body.rating);
  assert.equal(reviews[0].actions[0].done, true);
  assert.equal(reviews[0].actions[0].done_by, fullView[14].actor.user);
  assert.deepEqual(open_actions, []);
  // SPEC 27.3: a capacity request, accepted; the later decline projects as nothing.
  const request = s.capacityRequests.get(16);
  assert.equal(request.org, "harbour-shelter");
  assert.deepEqual(request.items, fullView[15].body.items);
  assert.equal(request.status, "accepted");
  assert.equal(request.answer.seq, 17);
});
