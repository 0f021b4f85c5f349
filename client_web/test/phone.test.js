// The pure parts of the phone layout and the responder's view: links in
// messages, map label placement, map links, refusal wording, urgent addressees.

import { test } from "node:test";
import assert from "node:assert/strict";

import { linkParts, telHref } from "../src/ui/linkify.js";
import { placeLabels } from "../src/ui/label_layout.js";
import { mapLinks } from "../src/ui/geo_links.js";
import { describeRefusal } from "../src/refusal.js";
import { waitsFor } from "../src/addressees.js";
import { emptyState, apply } from "../src/projection.js";

const kinds = (text) => linkParts(text).map((p) => [p.kind, p.text, p.href].filter(Boolean));

test("web addresses: http and https only, sentence punctuation left out", () => {
  assert.deepEqual(kinds("see https://example.org/a?b=1. Then"), [
    ["text", "see "],
    ["url", "https://example.org/a?b=1", "https://example.org/a?b=1"],
    ["text", ". Then"],
  ]);
  assert.deepEqual(kinds("(map: http://osm.org/x_(y))"), [
    ["text", "(map: "],
    ["url", "http://osm.org/x_(y)", "http://osm.org/x_(y)"],
    ["text", ")"],
  ]);
  for (const hostile of ["javascript:alert(1)", "data:text/html,<b>x</b>", "vbscript:msgbox", "ftp://x.org/a"]) {
    assert.deepEqual(kinds(hostile), [["text", hostile]], hostile);
  }
  assert.deepEqual(kinds('<img src=x onerror="alert(1)">'), [["text", '<img src=x onerror="alert(1)">']]);
});

test("phone numbers become tel: links; times, dates, CAD numbers and short numbers do not", () => {
  assert.deepEqual(kinds("call +44 20 7946 0101 now"), [
    ["text", "call "],
    ["tel", "+44 20 7946 0101", "tel:+442079460101"],
    ["text", " now"],
  ]);
  assert.deepEqual(kinds("(020) 7946-0202"), [["tel", "(020) 7946-0202", "tel:02079460202"]]);
  for (const plain of ["at 19:27", "on 2026-12-02", "CAD-2026-0412", "room 12", "seq 123456", "v1.2.3"]) {
    assert.ok(linkParts(plain).every((p) => p.kind === "text"), plain);
  }
  assert.equal(telHref(" +1 (555) 010-9999 "), "tel:+15550109999");
  assert.deepEqual(linkParts(""), [{ kind: "text", text: "" }]);
});

test("map labels: no two overlap, none leaves the map, the incident is placed first", () => {
  const items = [
    { key: "a", x: 100, y: 100, w: 120, h: 18, priority: 1 },
    { key: "b", x: 102, y: 101, w: 120, h: 18 },
    { key: "c", x: 104, y: 99, w: 120, h: 18 },
    { key: "edge", x: 388, y: 5, w: 150, h: 18 },
    { key: "incident", x: 101, y: 100, w: 160, h: 18, priority: 10 },
  ];
  const placed = placeLabels(items, { width: 390, height: 300 });
  const boxes = [...placed.values()].filter((p) => !p.hidden).map((p) => p.box);
  for (const [i, a] of boxes.entries()) {
    assert.ok(a.x1 >= 0 && a.y1 >= 0 && a.x2 <= 390 && a.y2 <= 300, "inside");
    for (const b of boxes.slice(i + 1)) {
      assert.ok(a.x2 <= b.x1 || b.x2 <= a.x1 || a.y2 <= b.y1 || b.y2 <= a.y1, "no overlap");
    }
  }
  assert.equal(placed.get("incident").hidden, false);
  assert.ok(placed.get("edge").box.x2 <= 390, "a label at the edge goes to the other side");
  assert.ok(placed.get("edge").dx < 0);
});

test("map links: a geo: URI and OpenStreetMap links, nothing for a non-place", () => {
  assert.deepEqual(mapLinks(51.5055, -0.0754, "Harbour Bridge"), {
    geo: "geo:51.5055,-0.0754?q=51.5055,-0.0754(Harbour%20Bridge)",
    osm: "https://www.openstreetmap.org/?mlat=51.5055&mlon=-0.0754#map=17/51.5055/-0.0754",
    navigate: "https://www.openstreetmap.org/directions?to=51.5055%2C-0.0754",
  });
  assert.equal(mapLinks(NaN, 0), null);
  assert.equal(mapLinks(91, 0), null);
});

// ------------------------------------------------------------ refusals

const T0 = Date.UTC(2026, 11, 2, 19, 0);
function env(seq, type, user, body, ts = T0 + seq * 60_000) {
  const org = user === "u_dispatch" ? "metro-police" : "harbour-shelter";
  const names = { u_dispatch: "Dana Dispatcher", u_outreach: "Nia Outreach", "u_shelter-lead": "Lee Coordinator" };
  return { v: 1, type, incident: "inc_1", seq, epoch: "e", ts, actor: { user, org, name: names[user] }, cid: `c${seq}`, visibility: null, body };
}
function fold(...envs) {
  const s = emptyState("inc_1", "e");
  for (const e of envs) apply(s, e);
  return s;
}
const fmt = (s) => ({ name: (u) => s.people.get(u)?.name || u, clock: (ts) => new Date(ts).toISOString().slice(11, 16), me: "u_outreach" });
const created = env(1, "incident.created", "u_dispatch", { title: "T", category: "welfare", priority: "high", orgs: ["metro-police", "harbour-shelter"] });

test("a refusal after being offline names who did what and when", () => {
  const s = fold(created, env(2, "message.posted", "u_outreach", { text: "hi" }), env(27, "incident.status_changed", "u_dispatch", { status: "closed" }));
  const conflict = { code: "conflict", message: "incident is closed" };
  const post = describeRefusal(s, { type: "message.post", text: "x" }, conflict, fmt(s));
  assert.equal(post.title, "Your message was not posted: Dana Dispatcher closed this incident at 19:27.");
  assert.equal(post.derived, true);
  const s2 = fold(created, env(2, "message.posted", "u_outreach", { text: "hi" }), env(3, "message.retracted", "u_outreach", { message: 2 }));
  assert.match(describeRefusal(s2, { type: "message.edit", message: 2 }, conflict, fmt(s2)).title, /You withdrew this message at 19:03/);
  const s3 = fold(
    created,
    env(2, "task.created", "u_dispatch", { title: "Bed", assignee: { org: "harbour-shelter" } }),
    env(4, "task.completed", "u_shelter-lead", { task: 2 }),
  );
  assert.equal(
    describeRefusal(s3, { type: "task.accept", task: 2 }, conflict, fmt(s3)).title,
    "The task change was not saved: Lee Coordinator completed this task at 19:04.",
  );
  const s4 = fold(created, env(5, "incident.status_changed", "u_dispatch", { status: "active" }));
  assert.match(describeRefusal(s4, { type: "incident.status", status: "active" }, conflict, fmt(s4)).title, /Dana Dispatcher had already set it to active at 19:05/);
});

test("a refusal the log does not explain falls back to the server's code in words", () => {
  const s = fold(created);
  const r = describeRefusal(s, { type: "message.post" }, { code: "conflict" }, fmt(s));
  assert.equal(r.derived, false);
  assert.match(r.title, /someone changed it first/);
  assert.equal(describeRefusal(s, { type: "message.post" }, { code: "forbidden" }, fmt(s)).derived, false);
});

// ------------------------------------------------------------ urgent addressees

test("an urgent message stops waiting for a watcher once its addressee acknowledged", () => {
  const orgOf = { "u_shelter-lead": "harbour-shelter", u_outreach: "harbour-shelter", u_dispatch: "metro-police" };
  const m = { urgent: true, retracted: false, author: { user: "u_dispatch" }, mentions: { users: [], orgs: ["harbour-shelter"] }, acks: {} };
  const supervisor = { id: "u_sergeant", org: "metro-police" };
  const outreach = { id: "u_outreach", org: "harbour-shelter" };
  const of = (u) => orgOf[u];
  assert.equal(waitsFor(m, supervisor, of), true);
  assert.equal(waitsFor(m, outreach, of), true);
  m.acks["u_shelter-lead"] = T0;
  assert.equal(waitsFor(m, supervisor, of), false, "the addressee answered");
  assert.equal(waitsFor(m, outreach, of), false, "their organisation answered");
  const everyone = { ...m, mentions: { users: [], orgs: [] }, acks: { "u_shelter-lead": T0 } };
  assert.equal(waitsFor(everyone, supervisor, of), true, "for everyone: each acknowledges");
  const named = { ...m, mentions: { users: ["u_outreach"], orgs: [] }, acks: { "u_shelter-lead": T0 } };
  assert.equal(waitsFor(named, outreach, of), true, "a named person acknowledges themselves");
  assert.equal(waitsFor(named, supervisor, of), true);
  named.acks.u_outreach = T0;
  assert.equal(waitsFor(named, supervisor, of), false);
});
