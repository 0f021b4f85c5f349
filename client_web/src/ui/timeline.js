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

export function timelineRow(app, state, row, { onPick, current } = {}) {
  if (row.restricted) {
    return h(
      "li",
      { class: "tl restricted-entry", "data-seq": row.seq },
      h("span", { class: "tl-time" }, ""),
      h("span", { class: "tl-what muted" }, row.count === 1 ? "1 restricted entry" : `${row.count} restricted entries`),
    );
  }
  const env = row.env;
  return h(
    "li",
    { class: ["tl", "ev-" + env.type.replace(".", "-"), current && "current"], "data-seq": env.seq, "data-type": env.type },
    h("time", { class: "tl-time", title: new Date(env.ts).toLocaleString() }, clock(env.ts, true)),
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
