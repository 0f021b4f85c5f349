// A restricted message must not mention an organisation outside its restriction (SPEC 8.6).

import { test } from "node:test";
import assert from "node:assert/strict";
import { mentionsOutside } from "../src/protocol.js";

const ORG_OF = { u_lead: "harbour-shelter", u_officer: "metro-police" };
const orgOf = (id) => ORG_OF[id] ?? null;

test("a message to everyone may mention anyone", () => {
  assert.deepEqual(mentionsOutside(null, { orgs: ["harbour-shelter"], users: ["u_lead"] }, orgOf), []);
});

test("a police-only message mentioning the shelter or its people is caught", () => {
  const police = ["metro-police"];
  assert.deepEqual(mentionsOutside(police, { orgs: ["harbour-shelter"], users: [] }, orgOf), ["harbour-shelter"]);
  assert.deepEqual(mentionsOutside(police, { orgs: [], users: ["u_lead", "u_officer"] }, orgOf), [
    "harbour-shelter",
  ]);
  assert.deepEqual(mentionsOutside(police, { orgs: ["metro-police"], users: ["u_officer"] }, orgOf), []);
});

test("widening the restriction to the mentioned organisation clears it", () => {
  const both = ["metro-police", "harbour-shelter"];
  assert.deepEqual(mentionsOutside(both, { orgs: ["harbour-shelter"], users: ["u_lead"] }, orgOf), []);
});
