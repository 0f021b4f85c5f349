// Opening an incident (coordinators).

import { h } from "../dom.js";
import { EXTERNAL_REF_MAX, PRIORITIES, externalRefProblem } from "../protocol.js";
import { PRIORITY_LABEL } from "../format.js";
import { INCIDENT_LABELS, TLP_MEANING, tlpText } from "../labels.js";

const CATEGORIES = ["welfare", "mental-health", "missing-person", "domestic", "shelter", "wildlife", "other"];

export class NewIncidentDialog {
  constructor(app) {
    this.app = app;
  }

  open() {
    const app = this.app;
    const title = h("input", { id: "ni-title", required: true, maxlength: 300, autocomplete: "off" });
    const category = h("input", { id: "ni-category", required: true, maxlength: 64, list: "ni-categories", value: "welfare" });
    const categories = h("datalist", { id: "ni-categories" }, CATEGORIES.map((c) => h("option", { value: c })));
    // CAP's Actual / Exercise / Test (SPEC 28): fixed once the incident is opened.
    const mode = h(
      "select",
      { id: "ni-mode" },
      h("option", { value: "actual" }, "Live incident"),
      h("option", { value: "exercise" }, "Exercise"),
      h("option", { value: "test" }, "Test"),
    );
    const priority = h("select", { id: "ni-priority" }, PRIORITIES.map((p) => h("option", { value: p, selected: p === "normal" }, PRIORITY_LABEL[p])));
    const address = h("input", { id: "ni-address", maxlength: 300, autocomplete: "off" });
    const lat = h("input", { id: "ni-lat", inputmode: "decimal", placeholder: "51.5055", autocomplete: "off" });
    const lon = h("input", { id: "ni-lon", inputmode: "decimal", placeholder: "-0.0754", autocomplete: "off" });
    const description = h("textarea", { id: "ni-description", rows: 3, maxlength: 8000 });
    const externalRef = h("input", { id: "ni-ref", maxlength: EXTERNAL_REF_MAX, autocomplete: "off", placeholder: "e.g. CAD-2026-0412" });
    const tlp = h(
      "select",
      { id: "ni-tlp" },
      h("option", { value: "" }, "Your organisation's default"),
      INCIDENT_LABELS.map((l) => h("option", { value: l, title: TLP_MEANING[l] }, `${tlpText(l)}: ${TLP_MEANING[l]}`)),
    );
    // The person the incident is about: protected fields (SPEC 9.4), shown to
    // another organisation only where an agreement grants them.
    const subject = {
      name: h("input", { id: "ni-subject-name", maxlength: 200, autocomplete: "off" }),
      dob: h("input", { id: "ni-subject-dob", type: "date" }),
      phone: h("input", { id: "ni-subject-phone", maxlength: 40, autocomplete: "off", inputmode: "tel" }),
      address: h("input", { id: "ni-subject-address", maxlength: 500, autocomplete: "off" }),
    };
    const orgBoxes = [...app.orgs.values()]
      .filter((o) => o.id !== app.me.org && o.kind !== "system")
      .map((o) => {
        const box = h("input", { type: "checkbox", value: o.id, name: "orgs" });
        return h("label", { class: "check" }, box, ` ${o.name}`);
      });
    const error = h("p", { class: "form-error", role: "alert" });
    const dialog = h(
      "dialog",
      { class: "new-incident", "aria-label": "New incident" },
      h(
        "form",
        {
          method: "dialog",
          on: {
            submit: async (ev) => {
              ev.preventDefault();
              error.textContent = "";
              const cmd = {
                type: "incident.create",
                title: title.value.trim(),
                category: category.value.trim(),
                priority: priority.value,
              };
              const la = lat.value.trim();
              const lo = lon.value.trim();
              if (la || lo) {
                const latN = Number(la.replace(",", "."));
                const lonN = Number(lo.replace(",", "."));
                if (!Number.isFinite(latN) || !Number.isFinite(lonN) || Math.abs(latN) > 90 || Math.abs(lonN) > 180) {
                  error.textContent = "The position is not valid: latitude −90…90 and longitude −180…180, in decimal degrees.";
                  return;
                }
                cmd.location = { lat: latN, lon: lonN };
                if (address.value.trim()) cmd.location.address = address.value.trim();
              } else if (address.value.trim()) {
                error.textContent = "Give a latitude and longitude with the address, so the incident shows on the map.";
                return;
              }
              const orgs = orgBoxes.map((l) => l.firstChild).filter((b) => b.checked).map((b) => b.value);
              if (orgs.length) cmd.orgs = orgs;
              if (description.value.trim()) cmd.description = description.value.trim();
              const ref = externalRef.value.trim();
              if (ref) {
                const problem = externalRefProblem(ref);
                if (problem) {
                  error.textContent = `CAD number: ${problem}.`;
                  return;
                }
                cmd.external_ref = ref;
              }
              if (tlp.value) cmd.tlp = tlp.value;
              if (mode.value !== "actual") cmd.mode = mode.value;
              const person = {};
              for (const [key, input] of Object.entries(subject)) if (input.value.trim()) person[key] = input.value.trim();
              if (Object.keys(person).length) cmd.subject = person;
              const item = await app.send(cmd);
              if (item) {
                dialog.close();
                dialog.remove();
                const note = app.toasts.info(
                  app.sync.status === "online" ? "Opening the incident…" : "The incident is queued and opens when the connection is back.",
                );
                app.openOnAck.set(item.id, note);
              }
            },
          },
        },
        h("h2", {}, "New incident"),
        h("label", { for: "ni-title" }, "Title"),
        title,
        h("div", { class: "form-row" }, h("div", {}, h("label", { for: "ni-category" }, "Category"), category, categories), h("div", {}, h("label", { for: "ni-priority" }, "Priority"), priority)),
        h("label", { for: "ni-address" }, "Address or landmark"),
        address,
        h("div", { class: "form-row" }, h("div", {}, h("label", { for: "ni-lat" }, "Latitude"), lat), h("div", {}, h("label", { for: "ni-lon" }, "Longitude"), lon)),
        h("fieldset", {}, h("legend", {}, "Organisations taking part (yours is always included)"), orgBoxes.length ? orgBoxes : h("p", { class: "muted" }, "No other organisation is known yet.")),
        h("label", { for: "ni-ref" }, "CAD number (optional)"),
        externalRef,
        h("label", { for: "ni-description" }, "What is known"),
        description,
        h("label", { for: "ni-tlp" }, "Label (TLP): who may read it"),
        tlp,
        h("label", { for: "ni-mode" }, "Mode (cannot be changed later)"),
        mode,
        h(
          "fieldset",
          {},
          h("legend", {}, "The person it is about (optional; other organisations see it only under a sharing agreement)"),
          h("div", { class: "form-row" }, h("div", {}, h("label", { for: "ni-subject-name" }, "Name"), subject.name), h("div", {}, h("label", { for: "ni-subject-dob" }, "Date of birth"), subject.dob)),
          h("div", { class: "form-row" }, h("div", {}, h("label", { for: "ni-subject-phone" }, "Phone"), subject.phone), h("div", {}, h("label", { for: "ni-subject-address" }, "Address"), subject.address)),
        ),
        error,
        h(
          "div",
          { class: "form-row" },
          h("button", { type: "submit", class: "primary" }, "Open incident"),
          h("button", { type: "button", on: { click: () => { dialog.close(); dialog.remove(); } } }, "Cancel"),
        ),
      ),
    );
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
    title.focus();
  }
}
