// Who is where: responders with status and the age of their last position,
// and the map (Leaflet, loaded only when a map is first shown).

import { h, reconcile, setText } from "../dom.js";
import { RESPONDER_LABEL, ago, distanceM, distanceText, freshness, label } from "../format.js";
import { orgBadge } from "./channel.js";
import { drawable, positionView } from "../labels.js";
import { mapLinkRow } from "./geo_links.js";

/** " · position 2 min ago · 40 m from the incident", or why there is none. */
export function whereText(r, location, now = Date.now()) {
  const view = positionView(r.position);
  if (view.kind === "none") return " · no position shared";
  if (view.kind === "redacted") return " · position not shared";
  const d = distanceM(drawable(r.position), location);
  const approx = view.kind === "coarse" ? "approximate position (about 100 m)" : "position";
  return ` · ${approx} ${ago(r.position_ts, now)}${d !== null ? ` · ${view.kind === "coarse" ? "about " : ""}${distanceText(d)} from the incident` : ""}`;
}

export class Responders {
  constructor(app) {
    this.app = app;
    this.list = h("ul", { class: "responders", "aria-label": "Responders" });
    this.empty = h("p", { class: "empty" }, "Nobody has reported a status yet.");
    this.el = h("section", { class: "people", "aria-label": "Responders" }, h("div", { class: "section-head" }, h("h3", {}, "Who is where")), this.empty, this.list);
  }

  update(state, now = Date.now()) {
    const rs = [...state.responders.values()].sort((a, b) => (b.status_ts || 0) - (a.status_ts || 0));
    const tick = Math.floor(now / 15000);
    reconcile(
      this.list,
      rs,
      (r) => r.user,
      (r) => `${r.status}|${r.status_ts}|${r.position_ts}|${tick}|${this.app.orgs.size}`,
      (r) => {
        const fresh = freshness(r.position_ts, now);
        const kind = positionView(r.position).kind;
        return h(
          "li",
          { class: ["responder", "fresh-" + fresh], "data-user": r.user, "data-position": kind },
          h("span", { class: "author" }, r.name),
          " ",
          orgBadge(this.app, r.org),
          " ",
          h("span", { class: ["rstatus", "rs-" + r.status] }, label(RESPONDER_LABEL, r.status) || "No status"),
          h("span", { class: ["muted", "where", kind === "redacted" && "redacted"] }, whereText(r, state.location, now)),
          kind === "exact" || kind === "coarse"
            ? mapLinkRow(drawable(r.position).lat, drawable(r.position).lon, r.name, "responder-links")
            : null,
        );
      },
    );
    this.empty.hidden = rs.length > 0;
  }
}

export class MapView {
  constructor(app) {
    this.app = app;
    this.map = null;
    this.loading = false;
    this.canvas = h("div", { class: "map-canvas", role: "img", "aria-label": "Map of the incident and the responders" });
    this.note = h("p", { class: "map-note muted", role: "note" });
    this.links = h("div", { class: "incident-links" });
    this.linksKey = "";
    // The note first: below a tall map it would sit behind a phone's tab bar.
    this.el = h("section", { class: "map-section", "aria-label": "Map" }, this.note, this.links, this.canvas);
  }

  update(state, now = Date.now()) {
    const loc = state.location;
    const linksKey = loc ? `${loc.lat},${loc.lon},${loc.address}` : "";
    if (linksKey !== this.linksKey) {
      this.linksKey = linksKey;
      this.links.replaceChildren();
      const row = loc ? mapLinkRow(loc.lat, loc.lon, loc.address || state.title, "incident-map-links") : null;
      if (row) this.links.append(h("span", { class: "muted" }, "Incident: "), row);
    }
    if (!this.map) {
      if (!this.loading) {
        this.loading = true;
        import("./map.js")
          .then(({ createMap }) => {
            this.map = createMap(this.canvas, { tileUrl: this.app.tileUrl });
            this.app.panes.forEach((p) => p.markDirty());
            this.app.replay?.markDirty?.();
            this.app.schedule();
          })
          .catch((err) => {
            console.error(err);
            setText(this.note, "The map could not be loaded; positions are listed above.");
          });
      }
      return;
    }
    // Only positions this organisation was given are drawn: a redacted one
    // is not on the map at all, a coarse one is a circle marked approximate.
    const people = [...state.responders.values()].map((r) => ({
      ...r,
      view: positionView(r.position),
      orgKind: this.app.orgKind(r.org),
      statusText: label(RESPONDER_LABEL, r.status) || "No status",
      age: ago(r.position_ts, now),
      fresh: freshness(r.position_ts, now),
    }));
    this.map.update({ location: state.location, title: state.title, people });
    const located = people.filter((p) => p.view.kind === "exact" || p.view.kind === "coarse").length;
    setText(
      this.note,
      [
        state.location ? "" : "The incident has no location yet.",
        located ? "" : "No responder position yet.",
        people.some((p) => p.view.kind === "redacted") ? "Some positions are not shared with your organisation." : "",
        this.app.tileUrl ? "" : "No map tiles configured: positions are shown on a plain grid.",
      ]
        .filter(Boolean)
        .join(" "),
    );
  }

  resize() {
    this.map?.resize();
  }

  destroy() {
    this.map?.destroy();
  }
}
