// Links in what people write: web addresses (http and https only) and phone
// numbers (tel:), built as DOM nodes. The text itself only ever becomes text
// nodes: nothing a message contains is parsed as HTML.

import { h } from "../dom.js";

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
// A phone number: an optional +, then 7 to 15 digits with spaces, dots,
// dashes or brackets between them; never inside a word or a longer number.
const PHONE_RE = /(?<![\w\-/.:+])\+?\(?\d[\d ().-]{5,20}\d(?![\w\-/])/g;
const TRAILING = /[.,;:!?)\]}'"]+$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A URL without the punctuation that ends the sentence it sits in; parentheses kept if balanced. */
function trimUrl(raw) {
  let url = raw;
  while (TRAILING.test(url)) {
    const last = url[url.length - 1];
    if (last === ")" && (url.match(/\(/g) || []).length >= (url.match(/\)/g) || []).length) break;
    url = url.slice(0, -1);
  }
  return url;
}

function safeHref(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** The dialable form of a number as written: "+44 (20) 7946-0101" -> "+442079460101". */
export function telHref(text) {
  const digits = text.replace(/[^\d]/g, "");
  return "tel:" + (text.trim().startsWith("+") ? "+" : "") + digits;
}

function phoneLike(text) {
  const digits = text.replace(/\D/g, "").length;
  return digits >= 7 && digits <= 15 && !ISO_DATE.test(text);
}

/**
 * The parts of `text`: [{kind: "text" | "url" | "tel", text, href?}], in order.
 * Pure, for the node tests; `linkify` turns them into nodes.
 */
export function linkParts(text) {
  const s = String(text ?? "");
  const found = [];
  for (const m of s.matchAll(URL_RE)) {
    const url = trimUrl(m[0]);
    const href = safeHref(url);
    if (href) found.push({ start: m.index, end: m.index + url.length, kind: "url", href });
  }
  for (const m of s.matchAll(PHONE_RE)) {
    const raw = m[0].replace(/[ .(-]+$/, "");
    const start = m.index;
    const end = start + raw.length;
    if (!phoneLike(raw) || found.some((f) => start < f.end && end > f.start)) continue;
    found.push({ start, end, kind: "tel", href: telHref(raw) });
  }
  found.sort((a, b) => a.start - b.start);
  const parts = [];
  let at = 0;
  for (const f of found) {
    if (f.start > at) parts.push({ kind: "text", text: s.slice(at, f.start) });
    parts.push({ kind: f.kind, text: s.slice(f.start, f.end), href: f.href });
    at = f.end;
  }
  if (at < s.length || !parts.length) parts.push({ kind: "text", text: s.slice(at) });
  return parts;
}

/** `text` as nodes: text nodes, and <a> elements for its links. */
export function linkify(text) {
  return linkParts(text).map((p) => {
    if (p.kind === "text") return p.text;
    if (p.kind === "url") {
      return h("a", { class: "msg-link", href: p.href, target: "_blank", rel: "noopener noreferrer" }, p.text);
    }
    return h("a", { class: "msg-link tel", href: p.href }, p.text);
  });
}
