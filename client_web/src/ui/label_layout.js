// Where each map label goes: beside its marker, on the first side where it
// overlaps no label already placed and stays inside the map; the incident
// first, then the freshest positions; markers on one spot get their labels
// stacked. A label that fits nowhere is hidden (its marker stays; tapping
// the marker puts its label first).

/** Candidate centre offsets for a w×h label around a marker of radius r. */
function candidates(w, h, r) {
  const gap = r + 4;
  return [
    [gap + w / 2, 0], // right
    [-(gap + w / 2), 0], // left
    [0, -(gap + h / 2)], // above
    [0, gap + h / 2], // below
    [gap + w / 2, -(gap + h / 2)], // above right
    [-(gap + w / 2), -(gap + h / 2)], // above left
    [gap + w / 2, gap + h / 2], // below right
    [-(gap + w / 2), gap + h / 2], // below left
    // Markers on one spot (a team arriving together): labels stacked above and below.
    ...[1, 2, 3].flatMap((k) => [
      [0, -(gap + h / 2 + k * (h + 2))],
      [0, gap + h / 2 + k * (h + 2)],
    ]),
  ];
}

function overlap(a, b) {
  const x = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const y = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  return x > 0 && y > 0 ? x * y : 0;
}

/**
 * items: [{key, x, y, w, h, r?, priority?}] (marker position and label size
 * in container pixels); bounds: {width, height}. Returns a Map key ->
 * {dx, dy, box, hidden}: the label's centre offset from its marker.
 */
export function placeLabels(items, bounds, margin = 2) {
  const placed = [];
  const out = new Map();
  const order = [...items].sort((a, b) => (b.priority || 0) - (a.priority || 0));
  for (const it of order) {
    let best = null;
    for (const [dx, dy] of candidates(it.w, it.h, it.r ?? 8)) {
      const box = { x1: it.x + dx - it.w / 2, y1: it.y + dy - it.h / 2, x2: it.x + dx + it.w / 2, y2: it.y + dy + it.h / 2 };
      const inside = box.x1 >= margin && box.y1 >= margin && box.x2 <= bounds.width - margin && box.y2 <= bounds.height - margin;
      if (!inside) continue;
      const cost = placed.reduce((sum, p) => sum + overlap(p, box), 0);
      if (!best || cost < best.cost) best = { dx, dy, box, cost };
      if (cost === 0) break;
    }
    if (!best || best.cost > 0) {
      out.set(it.key, { dx: 0, dy: 0, box: null, hidden: true });
      continue;
    }
    placed.push(best.box);
    out.set(it.key, { dx: best.dx, dy: best.dy, box: best.box, hidden: false });
  }
  return out;
}
