// The map (Leaflet): the incident's location and the responders' last
// positions, faded by age. The tile server is a setting; without one the map
// still works on a plain grid with a scale. Every label is a DOM element built
// with textContent: Leaflet never receives an HTML string from us.

import { map as leafletMap, tileLayer, control, layerGroup, circleMarker, circle, latLngBounds } from "leaflet/dist/leaflet-src.esm.js";
import { h } from "../dom.js";
import { placeLabels } from "./label_layout.js";

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
  const observer = new ResizeObserver(() => {
    map.invalidateSize({ pan: false });
    arrange();
  });
  observer.observe(container);
  map.on("zoomend moveend", () => arrange());

  // Markers are kept and updated in place (position, style, label text):
  // nothing is rebuilt on every event.
  const markers = new Map(); // key -> {marker, label, accuracy, priority}
  // A tapped marker's label goes first, so a hidden one shows.
  let chosen = null;

  /**
   * Labels beside their markers without overlapping or leaving the map
   * (label_layout.js). Leaflet centres each tooltip on its marker; the
   * placement moves it by a margin. Run after every change of view or data.
   */
  function arrange() {
    const size = map.getSize();
    const items = [];
    for (const [key, m] of markers) {
      const el = m.marker.getTooltip()?.getElement();
      if (!el) continue;
      const p = map.latLngToContainerPoint(m.marker.getLatLng());
      const priority = key === chosen ? 1e9 : m.priority;
      items.push({ key, x: p.x, y: p.y, w: el.offsetWidth, h: el.offsetHeight, r: m.marker.getRadius(), priority, el });
    }
    const placed = placeLabels(items, { width: size.x, height: size.y });
    for (const it of items) {
      const at = placed.get(it.key);
      it.el.style.marginLeft = `${at.dx}px`;
      it.el.style.marginTop = `${at.dy}px`;
      it.el.style.visibility = at.hidden ? "hidden" : "";
      it.el.dataset.placed = at.hidden ? "hidden" : "shown";
    }
  }

  function upsert(key, ll, style, text, cls, tooltip, accuracyM, priority = 0) {
    let m = markers.get(key);
    if (!m) {
      const label = h("span", { class: cls }, text);
      const marker = circleMarker(ll, style)
        .bindTooltip(label, { permanent: true, direction: "center", offset: [0, 0], className: "map-tip", ...tooltip })
        .addTo(layer);
      marker.on("click", () => {
        chosen = key;
        arrange();
      });
      m = { marker, label, accuracy: null, priority };
      markers.set(key, m);
    } else {
      m.priority = priority;
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
          {},
          null,
          1e6,
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
          {},
          coarse ? view.radius : view.accuracy && view.accuracy < 2000 ? view.accuracy : null,
          // fresher positions first
          -(p.position_ts ? Date.now() - p.position_ts : 1e12),
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
      arrange();
    },
    resize() {
      map.invalidateSize({ pan: false });
      arrange();
    },
    destroy() {
      observer.disconnect();
      map.remove();
    },
  };
}
