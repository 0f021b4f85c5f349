// The incident list: what the person's organisation takes part in, live,
// with unread / unacknowledged / "for you" counts, filters and search.

import { h, reconcile, setText } from "../dom.js";
import { PRIORITIES, INCIDENT_STATUSES } from "../protocol.js";
import { STATUS_LABEL, PRIORITY_LABEL, ago, label } from "../format.js";
import { tlpBadge } from "./tlp.js";
import { modeTag } from "./modes.js";

const PRIORITY_RANK = { critical: 0, high: 1, normal: 2, low: 3 };

export class IncidentList {
  constructor(app) {
    this.app = app;
    this.selected = null;
    this.dirty = true;
    const f = app.filters;
    this.search = h("input", {
      type: "search",
      class: "search",
      placeholder: "Search titles",
      "aria-label": "Search incidents",
      value: f.q,
      on: { input: () => this.setFilter("q", this.search.value) },
    });
    this.status = h(
      "select",
      { "aria-label": "Status filter", on: { change: () => this.setFilter("status", this.status.value) } },
      h("option", { value: "open" }, "Not closed"),
      h("option", { value: "" }, "All statuses"),
      INCIDENT_STATUSES.map((s) => h("option", { value: s }, STATUS_LABEL[s])),
    );
    this.status.value = f.status;
    this.priority = h(
      "select",
      { "aria-label": "Priority filter", on: { change: () => this.setFilter("priority", this.priority.value) } },
      h("option", { value: "" }, "Any priority"),
      PRIORITIES.map((p) => h("option", { value: p }, PRIORITY_LABEL[p])),
    );
    this.priority.value = f.priority;
    this.mine = h("input", {
      type: "checkbox",
      checked: f.mine,
      on: { change: () => this.setFilter("mine", this.mine.checked) },
    });
    this.ul = h("ul", { class: "incident-list", "aria-label": "Incidents" });
    this.empty = h("p", { class: "empty" });
    this.count = h("span", { class: "count" });
    this.newButton = app.coordinator
      ? h(
          "button",
          { type: "button", class: "primary", on: { click: () => app.newIncident() } },
          "New incident",
        )
      : null;
    this.el = h(
      "aside",
      { class: "list-panel", "aria-label": "Incident list" },
      h("div", { class: "list-head" }, (this.heading = h("h2", { tabindex: "-1" }, "Incidents ", this.count)), this.newButton),
      h(
        "div",
        { class: "filters" },
        this.search,
        h("div", { class: "filter-row" }, this.status, this.priority),
        h("label", { class: "check" }, this.mine, " Needs me (unread, urgent, tasks)"),
      ),
      this.ul,
      this.empty,
    );
  }

  setFilter(key, value) {
    this.app.filters[key] = value;
    this.app.persistUi();
    this.markDirty();
    this.app.schedule();
  }

  markDirty() {
    this.dirty = true;
  }

  /** Focus the selected row, else the list's heading: never an input (a phone's keyboard would open). */
  focus() {
    (this.ul.querySelector("li.selected button") || this.heading).focus({ preventScroll: true });
  }

  focusSearch() {
    if (this.app.layout === "phone" && this.el.hidden) this.app.backToList();
    this.search.focus();
    this.search.select();
  }

  rows() {
    const app = this.app;
    const f = app.filters;
    const q = f.q.trim().toLowerCase();
    const rows = [];
    for (const summary of app.summaries.values()) {
      const held = app.states.get(summary.id);
      const s = held && held.seq > 0 ? held : summary;
      if (f.status === "open" ? s.status === "closed" : f.status && s.status !== f.status) continue;
      if (f.priority && s.priority !== f.priority) continue;
      if (q && !String(s.title).toLowerCase().includes(q) && !String(s.external_ref ?? "").toLowerCase().includes(q)) continue;
      const c = app.counts(summary.id);
      if (f.mine && !(c.unread || c.unacked || c.myTasks)) continue;
      rows.push({ id: summary.id, s, c, updated: Math.max(summary.updated || 0, s.updated || 0) });
    }
    rows.sort(
      (a, b) =>
        (b.c.unacked > 0) - (a.c.unacked > 0) ||
        (PRIORITY_RANK[a.s.priority] ?? 9) - (PRIORITY_RANK[b.s.priority] ?? 9) ||
        b.updated - a.updated,
    );
    return rows;
  }

  update() {
    if (this.el.hidden) return;
    const rows = this.rows();
    this.current = rows;
    const now = Date.now();
    const minute = Math.floor(now / 30000);
    reconcile(
      this.ul,
      rows,
      (r) => r.id,
      (r) =>
        [
          r.s.title,
          r.s.status,
          r.s.priority,
          r.s.tlp,
          r.updated,
          r.c.unread,
          r.c.unacked,
          r.c.myTasks,
          r.id === this.app.active,
          r.id === this.selected,
          minute,
          this.app.states.get(r.id)?.seq > 0,
        ].join("|"),
      (r) => this.row(r, now),
    );
    setText(this.count, `(${rows.length})`);
    setText(
      this.empty,
      rows.length
        ? ""
        : this.app.summaries.size
          ? "No incident matches these filters."
          : "No incidents for your organisation yet.",
    );
    this.empty.hidden = rows.length > 0;
  }

  row(r, now) {
    const { s, c } = r;
    const badges = [];
    if (c.unacked) badges.push(h("span", { class: "pill urgent", title: "Urgent messages waiting for your acknowledgement" }, `${c.unacked} urgent`));
    if (c.myTasks) badges.push(h("span", { class: "pill task", title: "Tasks waiting for you to accept" }, `${c.myTasks} for you`));
    if (c.unread) badges.push(h("span", { class: "pill unread", title: "Unread messages" }, `${c.unread} new`));
    return h(
      "li",
      {
        class: ["incident-row", r.id === this.app.active && "active", r.id === this.selected && "selected", c.unacked && "has-urgent"],
        "data-incident": r.id,
      },
      h(
        "button",
        {
          type: "button",
          class: "row-open",
          on: {
            click: () => {
              this.selected = r.id;
              this.app.openIncident(r.id);
            },
          },
        },
        h(
          "span",
          { class: "row-top" },
          h("span", { class: ["prio", "prio-" + s.priority] }, label(PRIORITY_LABEL, s.priority)),
          h("span", { class: "row-title" }, s.title || "…"),
          s.external_ref ? h("span", { class: "ext-ref", title: "CAD number" }, s.external_ref) : null,
          tlpBadge(s.tlp),
        ),
        h(
          "span",
          { class: "row-meta" },
          h("span", { class: ["status", "st-" + s.status] }, label(STATUS_LABEL, s.status)),
          modeTag(s.mode),
          s.location?.address ? h("span", { class: "row-place" }, s.location.address) : null,
          h("time", { class: "row-time" }, ago(r.updated, now)),
        ),
        badges.length ? h("span", { class: "row-badges" }, badges) : null,
      ),
    );
  }

  move(delta) {
    const rows = this.current || this.rows();
    if (!rows.length) return;
    let i = rows.findIndex((r) => r.id === this.selected);
    i = i < 0 ? 0 : Math.max(0, Math.min(rows.length - 1, i + delta));
    this.selected = rows[i].id;
    this.update();
    const li = this.ul.querySelector(`li[data-incident="${CSS.escape(this.selected)}"]`);
    li?.scrollIntoView({ block: "nearest" });
    li?.querySelector("button")?.focus();
  }

  openSelected() {
    if (!this.selected) return false;
    this.app.openIncident(this.selected);
    return true;
  }
}
