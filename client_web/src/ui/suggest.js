// Suggested assignees when creating a task (SPEC 27.4): the incident's needs
// and the server's ranking (tags, availability, distance), each a button
// that picks the assignee in the task form.

import { h, setChildren } from "../dom.js";

export async function showSuggestions(app, incidentId, slot, select) {
  const state = app.states.get(incidentId);
  setChildren(slot, h("span", { class: "muted" }, "Suggestions…"));
  let data;
  try {
    data = await app.api.request("GET", `/api/v1/incidents/${encodeURIComponent(incidentId)}/suggestions?limit=5`);
  } catch (err) {
    console.warn("suggestions", err);
    setChildren(slot);
    return;
  }
  const needs = data.needs.length ? `Needs: ${data.needs.join(", ")}` : "No needs set";
  const pick = (s) => {
    const value = s.kind === "org" ? `org:${s.id}` : `user:${s.org}:${s.id}`;
    if (![...select.options].some((o) => o.value === value)) select.append(h("option", { value }, s.name));
    select.value = value;
  };
  setChildren(
    slot,
    h("span", { class: "muted" }, `${needs} · suggested:`),
    ...data.suggestions.map((s) =>
      h(
        "button",
        { type: "button", class: "suggestion", "data-id": s.id, title: `score ${s.score}${s.missing.length ? ` · missing ${s.missing.join(", ")}` : ""}`, on: { click: () => pick(s) } },
        `${s.name}${s.kind === "org" ? "" : ` (${app.orgName(s.org)})`}`,
        s.matched.length ? ` · ${s.matched.join(", ")}` : "",
        s.distance_km !== null ? ` · ${s.distance_km.toFixed(1)} km` : "",
        s.status ? ` · ${s.status.replace("_", " ")}` : "",
      ),
    ),
  );
  if (state && !data.suggestions.length) slot.append(h("span", { class: "muted" }, " nobody yet"));
}
