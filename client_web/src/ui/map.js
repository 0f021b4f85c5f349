// The map (Leaflet): the incident's location and the responders' last
// positions, faded by age. The tile server is a setting; without one the map
// still works on a plain grid with a scale. Every label is a DOM element built
// with textContent: Leaflet never receives an HTML string from us.

import { map as leafletMap, tileLayer, control, layerGroup, circleMarker, circle, latLngBounds } from "leaflet/dist/leaflet-src.esm.js";
import { h } from "../dom.js";

const KIND_COLOUR = { police: "#1f5fbf", ngo: "#1b7f4b", other: "#6b5b95" };
const FRESH_OPACITY = { fresh: 1, recent: 0.65, stale: 0.35, none: 0.35 };

function tileHost(url) {
  try {
    return new URL(url.replace(/\{[a-z]\}/g, "a")).host;
  } catch {
    return "";
  }
}

export function createMap(container, { tileUrl }) {
  const map = leafletMap(container, {
    attributionControl: false,
    zoomControl: true,
    center: [0, 0],
    zoom: 2,
    worldCopyJump: true,
  });
  if (tileUrl) {
    tileLayer(tileUrl, { maxZoom: 19, crossOrigin: true }).addTo(map);
    const host = tileHost(tileUrl);
    if (host) container.append(h("div", { class: "map-attribution" }, `Map tiles: ${host}`));
  } else {
    container.classList.add("no-tiles");
  }
  control.scale({ imperial: false }).addTo(map);
  const layer = layerGroup().addTo(map);
  let fitted = "";
  let userMoved = false;
  let fitting = false;
  map.on("dragstart", () => (userMoved = true));
  map.on("zoomstart", () => {
    if (!fitting) userMoved = true;
  });
  const observer = new ResizeObserver(() => map.invalidateSize({ pan: false }));
  observer.observe(container);

  // Markers are kept and updated in place (position, style, label text):
  // nothing is rebuilt on every event.
  const markers = new Map(); // key -> {marker, label, accuracy}

  function upsert(key, ll, style, text, cls, tooltip, accuracyM) {
    let m = markers.get(key);
    if (!m) {
      const label = h("span", { class: cls }, text);
      const marker = circleMarker(ll, style).bindTooltip(label, { permanent: true, ...tooltip }).addTo(layer);
      m = { marker, label, accuracy: null };
      markers.set(key, m);
    } else {
      m.marker.setLatLng(ll);
      m.marker.setStyle(style);
      if (m.label.textContent !== text) m.label.textContent = text;
      m.label.className = cls;
    }
    if (accuracyM) {
      if (!m.accuracy) {
        m.accuracy = circle(ll, { radius: accuracyM, weight: 1, fillOpacity: 0.08, interactive: false }).addTo(layer);
      }
      m.accuracy.setLatLng(ll);
      m.accuracy.setRadius(accuracyM);
      m.accuracy.setStyle({ color: style.fillColor, opacity: (style.fillOpacity ?? 1) * 0.5 });
    } else if (m.accuracy) {
      m.accuracy.remove();
      m.accuracy = null;
    }
  }

  return {
    update({ location, title, people }) {
      const points = [];
      const keep = new Set();
      if (location && Number.isFinite(location.lat) && Number.isFinite(location.lon)) {
        const ll = [location.lat, location.lon];
        points.push(ll);
        keep.add("incident");
        upsert(
          "incident",
          ll,
          { radius: 11, color: "#b3261e", weight: 3, fillColor: "#e5484d", fillOpacity: 0.85 },
          location.address ? `Incident: ${location.address}` : `Incident: ${title}`,
          "map-label incident",
          { direction: "top", offset: [0, -10] },
          null,
        );
      }
      for (const p of people) {
        // p.view: the position as this organisation may see it (labels.js positionView)
        const view = p.view;
        if (!view || (view.kind !== "exact" && view.kind !== "coarse")) continue;
        const coarse = view.kind === "coarse";
        const ll = [view.lat, view.lon];
        points.push(ll);
        const key = "u:" + p.user;
        keep.add(key);
        const colour = KIND_COLOUR[p.orgKind] || KIND_COLOUR.other;
        const opacity = FRESH_OPACITY[p.fresh] ?? 0.35;
        upsert(
          key,
          ll,
          {
            radius: 8,
            color: "#ffffff",
            weight: 2,
            fillColor: colour,
            fillOpacity: opacity,
            dashArray: p.fresh === "stale" ? "3 3" : null,
          },
          `${p.name} · ${p.statusText} · ${p.age}${coarse ? " · approximate" : ""}`,
          `map-label person fresh-${p.fresh}${coarse ? " approximate" : ""}`,
          { direction: "right", offset: [10, 0] },
          coarse ? view.radius : view.accuracy && view.accuracy < 2000 ? view.accuracy : null,
        );
      }
      for (const [key, m] of markers) {
        if (keep.has(key)) continue;
        m.marker.unbindTooltip();
        m.marker.remove();
        m.accuracy?.remove();
        markers.delete(key);
      }
      const key = points.map((p) => p.join(",")).join(";");
      if (points.length && key !== fitted && !userMoved) {
        fitted = key;
        fitting = true;
        if (points.length === 1) map.setView(points[0], 16, { animate: false });
        else map.fitBounds(latLngBounds(points), { padding: [40, 40], maxZoom: 17, animate: false });
        fitting = false;
      }
    },
    resize() {
      map.invalidateSize({ pan: false });
    },
    destroy() {
      observer.disconnect();
      map.remove();
    },
  };
}
