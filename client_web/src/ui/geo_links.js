// "Open in maps" and "Navigate" for a place: a geo: URI (RFC 5870) that a
// phone hands to its maps app, and OpenStreetMap links for any browser.

import { h } from "../dom.js";

function fixed(n) {
  return Number(n).toFixed(6).replace(/0+$/, "").replace(/\.$/, "");
}

/** {geo, osm, navigate} hrefs for a latitude and longitude, or null if it is not a place. */
export function mapLinks(lat, lon, label = "") {
  if (!Number.isFinite(lat) || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  const [la, lo] = [fixed(lat), fixed(lon)];
  const q = label ? `${la},${lo}(${encodeURIComponent(label)})` : `${la},${lo}`;
  return {
    geo: `geo:${la},${lo}?q=${q}`,
    osm: `https://www.openstreetmap.org/?mlat=${la}&mlon=${lo}#map=17/${la}/${lo}`,
    navigate: `https://www.openstreetmap.org/directions?to=${la}%2C${lo}`,
  };
}

/** The links as a row of <a> elements (or null): for the incident and each responder. */
export function mapLinkRow(lat, lon, label, cls = "") {
  const links = mapLinks(lat, lon, label);
  if (!links) return null;
  const ext = { target: "_blank", rel: "noopener noreferrer" };
  return h(
    "span",
    { class: ["map-links", cls] },
    h("a", { class: "map-link geo", href: links.geo }, "Open in maps"),
    h("a", { class: "map-link osm", href: links.osm, ...ext }, "OpenStreetMap"),
    h("a", { class: "map-link navigate", href: links.navigate, ...ext }, "Navigate"),
  );
}
