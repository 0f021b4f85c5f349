// Post-incident reviews in an incident pane (SPEC 8.12): each organisation's
// review, the follow-up actions still open (owner, due, overdue marked), a
// "Done" button for the action's owner or the reviewing organisation's
// coordinator, and, once the incident is closed, the review form for a
// coordinator. A second review by the same organisation replaces its first.

import { h, setChildren } from "../dom.js";
import { dateTime } from "../format.js";
import { reviewsView } from "../reviews.js";
import { orgBadge } from "./channel.js";
import { tlpBadge } from "./tlp.js";

const DAY_MS = 86_400_000;

export class ReviewSection {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.key = null;
    this.list = h("div", { class: "review-list" });
    this.openList = h("ul", { class: "open-actions", "aria-label": "Open follow-up actions" });
    this.formSlot = h("div", { class: "review-form-slot" });
    this.el = h(
      "section",
      { class: "reviews", "aria-label": "Post-incident reviews" },
      h("h3", {}, "Post-incident review"),
      h("h4", {}, "Open follow-up actions"),
      this.openList,
      this.list,
      this.formSlot,
    );
  }

  update(state) {
    const closed = state.status === "closed";
    const { reviews, open_actions } = reviewsView(state);
    this.el.hidden = !closed && reviews.length === 0;
    const key = `${state.rev}|${closed}|${Math.floor(Date.now() / 60000)}`;
    if (key === this.key) return;
    this.key = key;
    const name = (u) => this.app.personName(state, u);
    setChildren(
      this.openList,
      open_actions.length
        ? open_actions.map((a) =>
            h(
              "li",
              { class: ["open-action", a.overdue && "overdue"], "data-action": a.id },
              h("span", { class: "action-text" }, a.text),
              " · ",
              h("span", { class: "action-owner" }, name(a.owner)),
              " · due ",
              h("time", { class: "action-due" }, dateTime(a.due * 1000)),
              a.overdue ? h("strong", { class: "overdue-mark" }, " Overdue") : null,
              " ",
              orgBadge(this.app, a.org),
              this.mayMarkDone(a, state)
                ? h(
                    "button",
                    { type: "button", class: "action-done", on: { click: () => this.done(a) } },
                    "Done",
                  )
                : null,
            ),
          )
        : h("li", { class: "muted" }, "None."),
    );
    setChildren(this.list, reviews.map((r) => this.renderReview(r, name)));
    const mine = reviews.find((r) => r.org === this.app.me.org);
    const formKey = `${closed}|${mine?.seq}`;
    if (formKey !== this.formKey) {
      this.formKey = formKey; // rebuilt only when its review changes: typing is kept
      setChildren(this.formSlot, closed && this.app.coordinator ? this.renderForm(state, mine) : null);
    }
  }

  mayMarkDone(action, state) {
    const me = this.app.me;
    return state.status === "closed" && (action.owner === me.id || (this.app.coordinator && action.org === me.org));
  }

  done(action) {
    this.app.send({ type: "review.action_done", incident: this.id, action_id: action.id });
  }

  renderReview(r, name) {
    return h(
      "article",
      { class: "review", "data-org": r.org },
      h("header", {}, orgBadge(this.app, r.org), " ", h("span", { class: "rating", "aria-label": `rating ${r.rating} of 5` }, "★".repeat(r.rating) + "☆".repeat(5 - r.rating)), " ", tlpBadge(r.tlp), h("span", { class: "muted" }, ` by ${r.author.name || r.author.user}, ${dateTime(r.ts)}`)),
      h("p", {}, h("strong", {}, "Went well: "), r.went_well),
      h("p", {}, h("strong", {}, "Went badly: "), r.went_badly),
      r.actions.length
        ? h(
            "ul",
            { class: "review-actions" },
            r.actions.map((a) =>
              h("li", { class: [a.done ? "done" : "open", a.overdue && "overdue"] }, `${a.done ? "✓" : "○"} ${a.text} (${name(a.owner)}, due ${dateTime(a.due * 1000)})`),
            ),
          )
        : null,
    );
  }

  renderForm(state, mine) {
    const people = [...state.people.entries()].map(([id, p]) => [id, p.name]);
    if (!people.some(([id]) => id === this.app.me.id)) people.unshift([this.app.me.id, this.app.me.name]);
    const wentWell = h("textarea", { name: "went_well", required: true, rows: 2 }, mine?.went_well || "");
    const wentBadly = h("textarea", { name: "went_badly", required: true, rows: 2 }, mine?.went_badly || "");
    const rating = h("select", { name: "rating" }, [5, 4, 3, 2, 1].map((n) => h("option", { value: n, selected: n === (mine?.rating || 3) }, `${n} of 5`)));
    const rows = h("div", { class: "action-rows" });
    const addRow = (a = null) => {
      const due = new Date(a ? a.due * 1000 : Date.now() + 14 * DAY_MS).toISOString().slice(0, 10);
      rows.append(
        h(
          "div",
          { class: "action-row", "data-id": a?.id || "" },
          h("input", { name: "text", placeholder: "Follow-up action", "aria-label": "Action", value: a?.text || "" }),
          h("select", { name: "owner", "aria-label": "Owner" }, people.map(([id, n]) => h("option", { value: id, selected: id === a?.owner }, n))),
          h("input", { name: "due", type: "date", "aria-label": "Due", value: due }),
        ),
      );
    };
    for (const a of mine?.actions || []) addRow(a);
    const form = h(
      "form",
      { class: "review-form", on: { submit: (ev) => (ev.preventDefault(), this.submit(form, rows)) } },
      h("h4", {}, mine ? "Revise your organisation's review" : "Your organisation's review"),
      h("label", {}, "What went well", wentWell),
      h("label", {}, "What did not", wentBadly),
      h("label", {}, "Rating", rating),
      rows,
      h("button", { type: "button", class: "add-action", on: { click: () => addRow() } }, "Add an action"),
      h("button", { type: "submit", class: "primary submit-review" }, mine ? "Submit the revision" : "Submit the review"),
    );
    return form;
  }

  submit(form, rows) {
    const actions = [...rows.children]
      .map((row, i) => ({
        id: row.dataset.id || `a-${Date.now().toString(36)}-${i}`,
        text: row.querySelector("[name=text]").value.trim(),
        owner: row.querySelector("[name=owner]").value,
        due: Date.parse(row.querySelector("[name=due]").value + "T23:59:59Z") / 1000,
      }))
      .filter((a) => a.text && Number.isFinite(a.due));
    this.app.send({
      type: "review.submit",
      incident: this.id,
      went_well: form.elements.went_well.value,
      went_badly: form.elements.went_badly.value,
      rating: Number(form.elements.rating.value),
      actions,
    });
  }
}
