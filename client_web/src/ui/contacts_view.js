// The organisations taking part, each with its liaison and a tap-to-call
// link; for coordinators, "Organisations & liaisons…": add organisations and
// name liaisons (incident.update: add_orgs, liaisons; SPEC 8.4). The lead's
// coordinators may do both, a partner's name only their own liaison.

import { h, setChildren } from "../dom.js";
import { powers } from "../labels.js";
import { orgBadge } from "./channel.js";
import { telHref } from "./linkify.js";

export class ContactsView {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.el = h("div", { class: "pane-orgs contacts", "aria-label": "Organisations and liaisons" });
    this.key = "";
  }

  update(state) {
    const app = this.app;
    const known = app.contacts.of(state);
    const may = powers(state, app.me);
    const key = `${state.orgs.join(",")}|${JSON.stringify(state.liaisons)}|${known?.key}|${app.orgs.size}|${may.lead}`;
    if (key === this.key) return;
    this.key = key;
    const byOrg = new Map((known?.liaisons || []).map((l) => [l.org, l]));
    setChildren(
      this.el,
      state.orgs.map((o) => {
        const user = state.liaisons?.[o];
        const c = byOrg.get(o);
        const name = c?.name || (user ? app.personName(state, user) : null);
        return h(
          "span",
          { class: "org-contact", "data-org": o },
          orgBadge(app, o),
          state.lead_org === o ? h("span", { class: "muted lead" }, " lead") : null,
          name ? h("span", { class: "liaison", "data-user": user }, ` ${name}`) : h("span", { class: "muted" }, " no liaison"),
          c?.phone
            ? h(
                "a",
                { class: "call", href: telHref(c.phone), title: c.phone, "aria-label": `Call ${name}, ${app.orgName(o)}: ${c.phone}` },
                "☎ ",
                h("span", { class: "call-number" }, c.phone),
                h("span", { class: "call-word" }, "Call"),
              )
            : null,
        );
      }),
      app.coordinator
        ? h("button", { type: "button", class: "link edit-orgs", on: { click: () => this.openEditor() } }, "Organisations & liaisons…")
        : null,
    );
  }

  /** The people who may be named for `org`: those the client knows of it. */
  candidates(state, org) {
    const out = new Map();
    for (const [id, p] of this.app.people) if (p.org === org) out.set(id, p.name);
    for (const [id, p] of state.people) if (p.org === org) out.set(id, p.name);
    const current = state.liaisons?.[org];
    if (current && !out.has(current)) out.set(current, this.app.personName(state, current));
    return [...out].sort((a, b) => a[1].localeCompare(b[1]));
  }

  openEditor() {
    const app = this.app;
    const state = app.states.get(this.id);
    if (!state) return;
    const may = powers(state, app.me);
    const mine = app.me.org;
    const rows = state.orgs.map((o) => {
      const pick = h(
        "select",
        { class: "liaison-pick", "data-org": o, "aria-label": `Liaison of ${app.orgName(o)}`, disabled: !may.lead && o !== mine },
        h("option", { value: "" }, "— nobody named —"),
        this.candidates(state, o).map(([id, name]) => h("option", { value: id, selected: state.liaisons?.[o] === id }, name)),
      );
      return h("label", { class: "form-line" }, h("span", {}, app.orgName(o)), pick);
    });
    const addable = [...app.orgs.values()].filter((o) => !state.orgs.includes(o.id) && o.kind !== "system");
    const boxes = addable.map((o) => h("label", { class: "check" }, h("input", { type: "checkbox", value: o.id, class: "add-org" }), ` ${o.name}`));
    const error = h("p", { class: "form-error", role: "alert" });
    const close = () => {
      dialog.close();
      dialog.remove();
    };
    const dialog = h(
      "dialog",
      { class: "orgs-dialog", "aria-label": "Organisations and liaisons" },
      h(
        "form",
        {
          method: "dialog",
          on: {
            submit: async (ev) => {
              ev.preventDefault();
              const cmd = { type: "incident.update", incident: this.id };
              const added = boxes.map((b) => b.firstChild).filter((b) => b.checked).map((b) => b.value);
              if (added.length) cmd.add_orgs = added;
              const liaisons = {};
              for (const row of rows) {
                const pick = row.lastChild;
                if (!pick.disabled && pick.value && pick.value !== state.liaisons?.[pick.dataset.org]) liaisons[pick.dataset.org] = pick.value;
              }
              if (Object.keys(liaisons).length) cmd.liaisons = liaisons;
              if (!cmd.add_orgs && !cmd.liaisons) {
                error.textContent = "Nothing changed: add an organisation or choose a liaison.";
                return;
              }
              if (await app.send(cmd)) close();
            },
          },
        },
        h("h2", {}, "Organisations & liaisons"),
        h("p", { class: "muted" }, "The liaison is the person to call at each organisation. Organisations can be added, never removed."),
        rows,
        may.lead
          ? h("fieldset", {}, h("legend", {}, "Add organisations (they see the incident's history as their agreements allow)"), boxes.length ? boxes : h("p", { class: "muted" }, "Every known organisation takes part already."))
          : h("p", { class: "muted" }, "Only the lead organisation adds organisations; you name your own liaison."),
        error,
        h("div", { class: "form-row" }, h("button", { type: "submit", class: "primary" }, "Save"), h("button", { type: "button", on: { click: close } }, "Cancel")),
      ),
    );
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  }
}
