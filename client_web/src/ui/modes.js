// Exercise mode and written-at, as shown (SPEC 8.0, 28): the banner an
// exercise or a test carries on every view of it, and the note on a post
// that waited in an outbox ("written 19:05 · delivered 19:25 (offline)").

import { h } from "../dom.js";
import { writtenNote } from "../format.js";

/** The banner's text for an incident's mode, or null when it is live. */
export function modeText(mode) {
  if (!mode || mode === "actual") return null;
  return `${mode.toUpperCase()} — not a live incident`;
}

/** A banner element for an incident's mode (null when live). */
export function modeBanner(mode) {
  const text = modeText(mode);
  return text ? h("div", { class: "mode-banner", role: "note", "data-mode": mode }, text) : null;
}

/** A short tag for lists ("EXERCISE"), or null when live. */
export function modeTag(mode) {
  if (!mode || mode === "actual") return null;
  return h("span", { class: "tag mode-tag", title: modeText(mode) }, mode.toUpperCase());
}

/** The written/delivered note of a message that waited, or null. */
export function writtenTag(m) {
  const note = writtenNote(m.written_at, m.ts);
  return note ? h("span", { class: "written-note", title: "Written on a device that was offline" }, note) : null;
}
