// The capacity board (SPEC 27.2, 27.3): every partner organisation's current
// capacity at a glance, kept live by long-polling /api/v1/capacity/changes
// while open; your organisation's own row can be edited (by its
// coordinators); a dispatcher requests beds/staff/vehicles from the open
// incident; requests to your organisation are answered here.

import { h, setChildren, setText } from "../dom.js";
import { ago } from "../format.js";
import { explain } from "../errors.js";
import { CAPACITY_COUNTS } from "../protocol.js";

const ITEM_LABEL = {
  beds: "Beds",
  staff_on_duty: "Staff on duty",
  vehicles: "Vehicles",
  opening_hours: "Open",
  languages: "Languages",
  note: "Note",
};
const PUBLISHERS = new Set(["dispatcher", "supervisor", "admin"]);
const WAIT_S = 25;

/** Fold one change (entry of the changes feed) into the board's rows. */
export function foldChange(board, entry) {
  const row = board.orgs.find((r) => r.org === entry.org);
  if (!row || entry.seq <= row.seq) return;
  for (const [item, value] of Object.entries(entry.items)) {
    if (value === null) delete row.items[item];
    else row.items[item] = { value, seq: entry.seq, ts: entry.ts };
  }
  row.seq = entry.seq;
  row.updated = entry.ts;
}

const show = (item, v) => (v === undefined ? "–" : item === "languages" ? v.value.join(", ") : String(v.value));

export class CapacityView {
  constructor(app, onClose) {
    this.app = app;
    this.onClose = onClose;
    this.open = true;
    this.board = null;
    this.note = h("p", { class: "capacity-note muted", role: "status" }, "Loading…");
    this.rows = h("div", { class: "capacity-rows" });
    this.requests = h("div", { class: "capacity-requests" });
    this.el = h(
      "section",
      { class: "kpi-view capacity-view", "aria-label": "Capacity board" },
      h(
        "header",
        { class: "kpi-head" },
        h("h2", { tabindex: "-1" }, "Capacity board"),
        h("button", { type: "button", class: "close-capacity", on: { click: () => this.close() } }, "Close"),
      ),
      this.note,
      this.requests,
      this.rows,
    );
    this.load();
  }

  async load() {
    try {
      this.board = await this.app.api.request("GET", "/api/v1/capacity");
      this.render();
      this.follow();
    } catch (err) {
      const why = explain(err.error || { code: "network" });
      setText(this.note, `The board could not be loaded. ${why.title} ${why.action}`);
    }
  }

  async follow() {
    while (this.open) {
      try {
        const page = await this.app.api.request("GET", `/api/v1/capacity/changes?after=${this.board.pos}&wait_s=${WAIT_S}`);
        for (const entry of page.entries) foldChange(this.board, entry);
        this.board.pos = page.pos;
        if (page.entries.length) this.render();
      } catch (err) {
        console.warn("capacity changes", err);
        if (!this.open) return;
        await new Promise((r) => setTimeout(r, 3000));
        if (err.status === 416) return this.load();
      }
    }
  }

  activeIncident() {
    const id = this.app.workspace.active;
    return id ? this.app.states.get(id) : null;
  }

  render() {
    const me = this.app.me;
    const incident = this.activeIncident();
    setText(this.note, incident ? `Requests go to the open incident “${incident.title}”.` : "Open an incident to request capacity from it.");
    setChildren(this.rows, ...this.board.orgs.map((row) => this.renderRow(row, me, incident)));
    this.renderRequests(me);
  }

  renderRow(row, me, incident) {
    const cells = Object.keys(ITEM_LABEL).map((item) =>
      h("div", { class: "cap-item", "data-item": item }, h("span", { class: "cap-label" }, ITEM_LABEL[item]), h("strong", {}, show(item, row.items[item]))),
    );
    const mine = row.org === me.org && PUBLISHERS.has(me.role);
    const canAsk = incident && row.org !== me.org && incident.orgs.includes(row.org) && this.app.coordinator;
    return h(
      "article",
      { class: "cap-row", "data-org": row.org },
      h("h3", {}, row.name, " ", h("span", { class: "muted" }, row.updated ? `updated ${ago(row.updated)}` : "nothing published")),
      h("div", { class: "cap-items" }, ...cells),
      mine ? this.editForm(row) : null,
      canAsk ? this.requestForm(row, incident) : null,
    );
  }

  editForm(row) {
    const field = (item, attrs) => h("label", {}, ITEM_LABEL[item], " ", h("input", { name: item, value: row.items[item] ? show(item, row.items[item]) : "", ...attrs }));
    const form = h(
      "form",
      { class: "cap-edit", on: { submit: (ev) => (ev.preventDefault(), this.publish(row, form)) } },
      ...CAPACITY_COUNTS.map((item) => field(item, { type: "number", min: 0, inputmode: "numeric" })),
      field("opening_hours", { maxlength: 200 }),
      field("languages", { placeholder: "en, ar" }),
      field("note", { maxlength: 500 }),
      h("button", { type: "submit", class: "primary" }, "Publish"),
    );
    return form;
  }

  async publish(row, form) {
    const items = {};
    for (const input of form.querySelectorAll("input")) {
      const raw = input.value.trim();
      const item = input.name;
      const value = !raw
        ? null
        : CAPACITY_COUNTS.includes(item)
          ? Number(raw)
          : item === "languages"
            ? raw.split(/[\s,]+/).filter(Boolean)
            : raw;
      const had = row.items[item] ? row.items[item].value : null;
      if (JSON.stringify(value) !== JSON.stringify(had)) items[item] = value;
    }
    if (!Object.keys(items).length) return;
    try {
      await this.app.api.request("POST", `/api/v1/orgs/${encodeURIComponent(row.org)}/capacity`, { id: crypto.randomUUID(), items });
      this.app.toasts.info("Capacity published");
    } catch (err) {
      const why = explain(err.error || { code: "network" });
      this.app.toasts.error(why.title, why.action);
    }
  }

  requestForm(row, incident) {
    const what = h("select", { name: "item", "aria-label": "What to request" }, CAPACITY_COUNTS.map((i) => h("option", { value: i }, ITEM_LABEL[i])));
    const count = h("input", { name: "count", type: "number", min: 1, value: 1, "aria-label": "How many", inputmode: "numeric" });
    return h(
      "form",
      {
        class: "cap-request",
        on: {
          submit: async (ev) => {
            ev.preventDefault();
            const item = await this.app.send({ type: "capacity.request", incident: incident.id, org: row.org, items: { [what.value]: Number(count.value) } });
            if (item) this.app.toasts.info(`Requested from ${row.name}`);
          },
        },
      },
      what,
      count,
      h("button", { type: "submit" }, `Request from ${row.name}`),
    );
  }

  renderRequests(me) {
    const open = [];
    for (const state of this.app.states.values()) {
      for (const r of state.capacityRequests?.values() || []) {
        if (r.org === me.org && r.status === "requested") open.push([state, r]);
      }
    }
    const items = (r) => Object.entries(r.items).map(([k, v]) => `${ITEM_LABEL[k]} ${Array.isArray(v) ? v.join(", ") : v}`).join(", ");
    const answer = (state, r, accept) =>
      this.app.send({ type: accept ? "capacity.accept" : "capacity.decline", incident: state.id, request: r.seq });
    setChildren(
      this.requests,
      ...(open.length ? [h("h3", {}, "Needs you: capacity requested")] : []),
      ...open.map(([state, r]) =>
        h(
          "div",
          { class: "cap-asked", "data-request": String(r.seq) },
          h("span", {}, `“${state.title}”: ${items(r)}${r.note ? ` — ${r.note}` : ""}`),
          h("button", { type: "button", class: "primary", on: { click: () => answer(state, r, true) } }, "Accept"),
          h("button", { type: "button", on: { click: () => answer(state, r, false) } }, "Decline"),
        ),
      ),
    );
  }

  /** On every render of the shell: incident states changed (a request, an answer). */
  update() {
    if (this.board) this.renderRequests(this.app.me);
  }

  close() {
    this.open = false;
    this.el.remove();
    this.onClose();
  }
}
