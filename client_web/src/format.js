// Labels and times as people read them.

export const STATUS_LABEL = {
  reported: "Reported",
  active: "Active",
  contained: "Contained",
  resolved: "Resolved",
  closed: "Closed",
};

export const PRIORITY_LABEL = { low: "Low", normal: "Normal", high: "High", critical: "Critical" };

export const RESPONDER_LABEL = {
  available: "Available",
  en_route: "En route",
  on_scene: "On scene",
  unavailable: "Unavailable",
};

export const TASK_LABEL = {
  open: "Open",
  assigned: "Assigned",
  accepted: "Accepted",
  declined: "Declined",
  in_progress: "In progress",
  completed: "Completed",
  cancelled: "Cancelled",
};

export const TASK_ACTION_LABEL = {
  "task.accept": "Accept",
  "task.decline": "Decline",
  "task.start": "Start",
  "task.complete": "Complete",
  "task.cancel": "Cancel task",
  "task.assign": "Reassign",
};

export const label = (table, value) => table[value] || String(value ?? "");

const pad = (n) => String(n).padStart(2, "0");

export function clock(ts, withSeconds = false) {
  if (!ts) return "";
  const d = new Date(ts);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${withSeconds ? ":" + pad(d.getSeconds()) : ""}`;
}

/** Written and stored further apart than this: it waited in an outbox (SPEC 8.0). */
export const WRITTEN_NOTE_AFTER_MS = 60_000;

/** "written 19:05 · delivered 19:25 (offline)", or null when the two are close. */
export function writtenNote(writtenAt, ts) {
  if (!Number.isInteger(writtenAt) || ts - writtenAt <= WRITTEN_NOTE_AFTER_MS) return null;
  return `written ${clock(writtenAt)} · delivered ${clock(ts)} (offline)`;
}

export function dateTime(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(ts, true)}`;
}

/** "just now", "4 min ago", "2 h ago", or a date. */
export function ago(ts, now = Date.now()) {
  if (!ts) return "";
  const s = Math.max(0, Math.round((now - ts) / 1000));
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return dateTime(ts).slice(0, 10);
}

export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  return `${hh ? hh + ":" : ""}${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

/** Freshness of a position: fresh (< 2 min), recent (< 10 min), stale. */
export function freshness(ts, now = Date.now()) {
  if (!ts) return "none";
  const age = now - ts;
  if (age < 120_000) return "fresh";
  if (age < 600_000) return "recent";
  return "stale";
}

/** Great-circle distance in metres. */
export function distanceM(a, b) {
  if (!a || !b) return null;
  const R = 6371000;
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const x =
    Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.sqrt(x));
}

export function distanceText(m) {
  if (m === null || m === undefined) return "";
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`;
}

export function initials(name) {
  return String(name || "?")
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => [...w][0].toUpperCase())
    .join("");
}
