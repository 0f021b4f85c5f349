// The timeline: every event of the incident this organisation may see, in
// order, loaded over REST on first view and then extended live.
// Restricted events show only as a count ("1 restricted entry").

import { h, reconcile, setText } from "../dom.js";
import { clock } from "../format.js";
import { describe } from "./describe.js";
import { orgBadge } from "./channel.js";
import { explain } from "../errors.js";
import { tlpBadge } from "./tlp.js";

/** Consecutive placeholders folded into one row. */
export function timelineRows(events) {
  const rows = [];
  for (const env of events) {
    const last = rows[rows.length - 1];
    if (env.type === "restricted") {
      if (last?.restricted) {
        last.count++;
        last.to = env.seq;
      } else rows.push({ restricted: true, seq: env.seq, to: env.seq, count: 1 });
    } else rows.push({ env, seq: env.seq });
  }
  return rows;
}

/** "T−2:05" / "T+0:30": a time relative to the replay's moment T. */
export function relative(ts, t) {
  const d = Math.round((ts - t) / 1000);
  const a = Math.abs(d);
  const text = `${Math.floor(a / 3600) ? Math.floor(a / 3600) + ":" : ""}${String(Math.floor((a % 3600) / 60)).padStart(2, "0")}:${String(a % 60).padStart(2, "0")}`;
  return d === 0 ? "T" : `T${d < 0 ? "−" : "+"}${text}`;
}

export function timelineRow(app, state, row, { onPick, current, relativeTo } = {}) {
  if (row.restricted) {
    const n = row.count === 1 ? "1 restricted entry" : `${row.count} restricted entries`;
    return h(
      "li",
      {
        class: "tl restricted-entry",
        "data-seq": row.seq,
        title: `Seq ${row.seq}${row.to !== row.seq ? "–" + row.to : ""}: entries your organisation may not see. They exist, and the hash chain covers them; their content and time are not shown.`,
      },
      h("span", { class: "tl-time" }, ""),
      h("span", { class: "tl-what" }, h("span", { class: "restricted-mark" }, "Restricted"), " ", h("span", { class: "muted" }, `${n} (seq ${row.seq}${row.to !== row.seq ? "–" + row.to : ""})`)),
    );
  }
  const env = row.env;
  const rel = relativeTo === undefined ? null : h("span", { class: "tl-rel", title: "Relative to the replay's moment T" }, relative(env.ts, relativeTo));
  return h(
    "li",
    { class: ["tl", "ev-" + env.type.replace(".", "-"), current && "current"], "data-seq": env.seq, "data-type": env.type },
    h("time", { class: "tl-time", title: new Date(env.ts).toLocaleString() }, clock(env.ts, true)),
    rel,
    h(
      "span",
      { class: "tl-what" },
      h("span", { class: "author" }, env.actor?.name || "?"),
      " ",
      env.actor ? orgBadge(app, env.actor.org) : null,
      " ",
      describe(app, state, env),
      " ",
      tlpBadge(env.body?.tlp),
    ),
    onPick
      ? h(
          "button",
          { type: "button", class: "link tl-go", "data-seq": env.seq, "aria-label": "Go to this moment", title: "Go to this moment", on: { click: () => onPick(env) } },
          "Go",
        )
      : null,
  );
}

export class Timeline {
  constructor(app, incidentId) {
    this.app = app;
    this.id = incidentId;
    this.events = null;
    this.loading = false;
    this.list = h("ol", { class: "timeline", "aria-label": "Timeline" });
    this.note = h("p", { class: "empty" }, "Loading the timeline…");
    this.el = h("section", { class: "timeline-section", "aria-label": "Timeline" }, this.note, this.list);
  }

  async load() {
    if (this.loading || this.events) return;
    this.loading = true;
    try {
      const { events } = await this.app.api.timeline(this.id);
      // live events that arrived during the load are merged by seq
      const bySeq = new Map(events.map((e) => [e.seq, e]));
      for (const e of this.pendingLive || []) bySeq.set(e.seq, e);
      this.events = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
      this.pendingLive = null;
      setText(this.note, "");
      this.note.hidden = true;
    } catch (err) {
      const why = explain(err.error || { code: "network" });
      setText(this.note, `The timeline could not be loaded. ${why.action}`);
    } finally {
      this.loading = false;
      this.app.panes.get(this.id)?.markDirty();
      this.app.schedule();
    }
  }

  onEvent(env) {
    if (this.events) {
      const last = this.events[this.events.length - 1];
      if (!last || env.seq > last.seq) this.events.push(env);
    } else if (this.loading) {
      (this.pendingLive ||= []).push(env);
    }
  }

  update(state) {
    if (!this.events) {
      this.load();
      return;
    }
    const scroller = this.el;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
    reconcile(
      this.list,
      timelineRows(this.events),
      (r) => (r.restricted ? "r" + r.seq : r.seq),
      (r) => (r.restricted ? r.count : 1) + "|" + this.app.orgs.size,
      (r) => timelineRow(this.app, state, r),
    );
    if (atBottom) scroller.scrollTop = scroller.scrollHeight;
  }
}
