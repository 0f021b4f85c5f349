// TLP labels, redaction and the lead's powers as the browser client reads
// them (SPEC 8.0, 9.4): the label picker's checks, the commands the
// composer and the task form build, the redaction wording.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  NOT_SHARED,
  checkLabelChoice,
  drawable,
  isRedacted,
  labelOf,
  positionView,
  powers,
  recipientCandidates,
  redHeirs,
  subjectRows,
  tlpText,
  withLabel,
} from "../src/labels.js";
import { composeMessage } from "../src/ui/channel.js";
import { composeTask } from "../src/ui/tasks.js";
import { explain } from "../src/errors.js";
import { validateCommand } from "../src/protocol.js";

const R = { redacted: true };
const none = { users: [], orgs: [] };

test("labels read as TLP 2.0 writes them; events before labels count as AMBER", () => {
  assert.equal(tlpText("AMBER+STRICT"), "TLP:AMBER+STRICT");
  assert.equal(tlpText("RED"), "TLP:RED");
  assert.equal(labelOf(undefined), "AMBER");
  assert.equal(tlpText("bogus"), "TLP:AMBER");
});

test("AMBER+STRICT needs organisations, RED needs people; the field is the server's", () => {
  assert.equal(checkLabelChoice({ tlp: "AMBER", visibility: null, recipients: [], mentions: none }), null);
  assert.equal(checkLabelChoice({ tlp: "AMBER+STRICT", visibility: null, mentions: none }).field, "visibility");
  assert.equal(checkLabelChoice({ tlp: "AMBER+STRICT", visibility: ["metro-police"], mentions: none }), null);
  const red = checkLabelChoice({ tlp: "RED", visibility: null, recipients: [], mentions: none });
  assert.equal(red.field, "recipients");
  assert.match(red.message, /TLP:RED/);
  assert.equal(checkLabelChoice({ tlp: "RED", recipients: ["u_outreach"], mentions: none }), null);
  assert.equal(checkLabelChoice({ tlp: "NOPE", mentions: none }).field, "tlp");
  assert.equal(checkLabelChoice({ tlp: "GREEN", recipients: ["u_outreach"], mentions: none }).field, "recipients");
});

test("a RED message may mention only its recipients", () => {
  const base = { tlp: "RED", recipients: ["u_outreach"] };
  assert.equal(checkLabelChoice({ ...base, mentions: { users: ["u_outreach"], orgs: [] } }), null);
  assert.equal(checkLabelChoice({ ...base, mentions: { users: [], orgs: ["harbour-shelter"] } }).field, "mentions");
  assert.equal(checkLabelChoice({ ...base, mentions: { users: ["u_shelter-lead"], orgs: [] } }).field, "mentions");
});

test("the composer's command: RED carries recipients and no visibility, STRICT its organisations", () => {
  const red = composeMessage({
    incident: "inc_a",
    text: "Only for Nia",
    urgent: true,
    replyTo: 3,
    tlp: "RED",
    visibility: ["metro-police"],
    recipients: ["u_outreach"],
    mentions: { users: ["u_outreach"], orgs: [] },
  });
  assert.deepEqual(red, {
    type: "message.post",
    incident: "inc_a",
    text: "Only for Nia",
    urgent: true,
    reply_to: 3,
    mentions: { users: ["u_outreach"], orgs: [] },
    tlp: "RED",
    recipients: ["u_outreach"],
  });
  const strict = composeMessage({ incident: "inc_a", text: "x", tlp: "AMBER+STRICT", visibility: ["metro-police"], recipients: [], mentions: none });
  assert.deepEqual(strict, { type: "message.post", incident: "inc_a", text: "x", tlp: "AMBER+STRICT", visibility: ["metro-police"] });
  const plain = composeMessage({ incident: "inc_a", text: "x", tlp: "GREEN", visibility: null, recipients: [], mentions: none });
  assert.deepEqual(plain, { type: "message.post", incident: "inc_a", text: "x", tlp: "GREEN" });
  for (const cmd of [red, strict, plain]) assert.equal(validateCommand({ ...cmd, id: "c-1" }), "message.post");
});

test("withLabel never leaves recipients on a label other than RED", () => {
  assert.deepEqual(withLabel({ type: "message.post", recipients: ["u"] }, { tlp: "AMBER" }), { type: "message.post", tlp: "AMBER" });
});

test("the task form: a RED task goes to one named person, its recipient", () => {
  const cmd = { type: "task.create", incident: "inc_a", title: "Call back" };
  assert.match(composeTask({ ...cmd, assignee: { org: "harbour-shelter" } }, { tlp: "RED" }).problem, /named person/);
  assert.deepEqual(composeTask({ ...cmd, assignee: { org: "harbour-shelter", user: "u_outreach" } }, { tlp: "RED" }).cmd, {
    ...cmd,
    assignee: { org: "harbour-shelter", user: "u_outreach" },
    tlp: "RED",
    recipients: ["u_outreach"],
  });
  assert.match(composeTask(cmd, { tlp: "AMBER+STRICT", visibility: null }).problem, /AMBER\+STRICT/);
  assert.deepEqual(composeTask(cmd, { tlp: "AMBER+STRICT", visibility: ["metro-police"] }).cmd.visibility, ["metro-police"]);
});

test("a subject's redacted fields say they are not shared; absent ones are left out", () => {
  assert.equal(subjectRows(null), null);
  assert.equal(subjectRows({ name: null, dob: null, phone: null, address: null }), null);
  const rows = subjectRows({ name: "A. Person", dob: R, phone: R, address: null });
  assert.deepEqual(
    rows.map((r) => [r.key, r.text, r.redacted]),
    [
      ["name", "A. Person", false],
      ["dob", NOT_SHARED, true],
      ["phone", NOT_SHARED, true],
    ],
  );
  assert.equal(NOT_SHARED, "not shared with your organisation");
});

test("positions: redacted is not drawn, coarse is a circle of at least 100 m", () => {
  assert.ok(isRedacted(R));
  assert.ok(!isRedacted({ lat: 1, lon: 2 }));
  assert.deepEqual(positionView(null), { kind: "none" });
  assert.deepEqual(positionView(R), { kind: "redacted" });
  assert.equal(drawable(R), null);
  assert.deepEqual(positionView({ lat: 51.506, lon: -0.077, accuracy_m: 100, precision: "coarse" }), {
    kind: "coarse",
    lat: 51.506,
    lon: -0.077,
    radius: 100,
  });
  assert.equal(positionView({ lat: 51.506, lon: -0.077, accuracy_m: null, precision: "coarse" }).radius, 100);
  assert.deepEqual(positionView({ lat: 51.50611, lon: -0.07682, accuracy_m: 12 }), {
    kind: "exact",
    lat: 51.50611,
    lon: -0.07682,
    accuracy: 12,
  });
  assert.deepEqual(drawable({ lat: 1, lon: 2, accuracy_m: null }), { lat: 1, lon: 2 });
  // anything else that is not a usable position is treated as not shared, never drawn
  assert.equal(positionView({ lat: "x" }).kind, "redacted");
});

test("a partner's coordinator runs its own part only (SPEC 8.0)", () => {
  const state = { lead_org: "metro-police" };
  const lead = powers(state, { id: "u_dispatch", org: "metro-police", role: "dispatcher" });
  assert.ok(lead.lead && lead.changeStatus && lead.editIncident && lead.addOrgs);
  assert.ok(lead.assignTo({ org: "harbour-shelter" }));
  assert.ok(lead.cancelTask({}, "harbour-shelter"));
  const partner = powers(state, { id: "u_shelter-lead", org: "harbour-shelter", role: "dispatcher" });
  assert.ok(partner.coordinator && !partner.lead);
  assert.ok(!partner.changeStatus && !partner.editIncident && !partner.addOrgs && !partner.changeLead);
  assert.ok(partner.assignTo({ org: "harbour-shelter", user: "u_outreach" }));
  assert.ok(!partner.assignTo({ org: "metro-police" }));
  assert.ok(partner.cancelTask({}, "harbour-shelter"));
  assert.ok(!partner.cancelTask({}, "metro-police"));
  const responder = powers(state, { id: "u_officer", org: "metro-police", role: "responder" });
  assert.ok(!responder.lead && !responder.assignTo({ org: "metro-police" }));
});

test("RED recipients: the participants' people this client knows, but me; a reply goes to the author and recipients", () => {
  const fromEvents = new Map([
    ["u_outreach", { name: "Nia Outreach", org: "harbour-shelter" }],
    ["u_dispatch", { name: "Dana Dispatcher", org: "metro-police" }],
  ]);
  const directory = new Map([
    ["u_officer", { name: "Omar Officer", org: "metro-police" }],
    ["u_wild", { name: "Wanda", org: "city-wildlife" }],
  ]);
  const me = { id: "u_dispatch", org: "metro-police" };
  assert.deepEqual(
    recipientCandidates(["metro-police", "harbour-shelter"], me, fromEvents, directory).map((p) => p.id),
    ["u_outreach", "u_officer"],
  );
  const parent = { author: { user: "u_dispatch" }, recipients: ["u_outreach", "u_officer"] };
  assert.deepEqual(redHeirs(parent, { id: "u_outreach" }), ["u_dispatch", "u_officer"]);
});

test("the server's sharing refusals are explained in plain words", () => {
  for (const field of ["tlp", "recipients", "visibility", "mentions"]) {
    const why = explain({ code: "invalid", message: `${field}: server words`, retryable: false, detail: { field } }, "message.post");
    assert.ok(why.title.startsWith("Your message "), why.title);
    assert.ok(!why.title.includes("server words") && !why.action.includes("server words"));
    assert.ok(why.action.length > 40, why.action);
  }
  assert.match(explain({ code: "invalid", detail: { field: "recipients" } }, "message.post").action, /TLP:RED/);
  assert.match(explain({ code: "invalid", detail: { field: "visibility" } }, "message.post").action, /AMBER\+STRICT/);
});

test("the client refuses a malformed label or subject as the server would", () => {
  const post = { type: "message.post", id: "c-1", incident: "inc_a", text: "x" };
  assert.throws(() => validateCommand({ ...post, tlp: "PURPLE" }), (e) => e.field === "tlp");
  assert.throws(() => validateCommand({ ...post, recipients: "u_x" }), (e) => e.field === "recipients");
  const create = { type: "incident.create", id: "c-2", title: "t", category: "welfare" };
  assert.throws(() => validateCommand({ ...create, tlp: "RED" }), (e) => e.field === "tlp");
  assert.throws(() => validateCommand({ ...create, subject: {} }), (e) => e.field === "subject");
  assert.throws(() => validateCommand({ ...create, subject: { dob: "1990-02-30" } }), (e) => e.field === "subject.dob");
  assert.equal(validateCommand({ ...create, tlp: "GREEN", subject: { name: "A. Person", dob: "1990-02-28" } }), "incident.create");
});

test("who is where: not shared, approximate, or exact, in words", async () => {
  const { whereText } = await import("../src/ui/people.js");
  const now = Date.now();
  const incident = { lat: 51.5055, lon: -0.0754 };
  const r = (position) => ({ position, position_ts: now });
  assert.equal(whereText(r(null), incident, now), " · no position shared");
  assert.equal(whereText(r(R), incident, now), " · position not shared");
  assert.match(
    whereText(r({ lat: 51.506, lon: -0.077, accuracy_m: 100, precision: "coarse" }), incident, now),
    /^ · approximate position \(about 100 m\) just now · about \d+ m from the incident$/,
  );
  assert.match(whereText(r({ lat: 51.5061, lon: -0.0768, accuracy_m: 8 }), incident, now), /^ · position just now · \d+ m from the incident$/);
});
