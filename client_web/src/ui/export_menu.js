// The Export menu of the supervisor's replay (SPEC section 23): downloads the
// incident's export in one of four formats, with a progress bar. The server
// says how many events to expect (X-Liaison-Export-Events); JSONL and CSV are
// counted line by line as they stream in, the HTML and PDF reports in bytes.

import { h, setText } from "../dom.js";
import { explain } from "../errors.js";

const FORMATS = [
  ["jsonl", "Verifiable log (JSONL)"],
  ["csv", "Spreadsheet (CSV)"],
  ["html", "Report (HTML)"],
  ["pdf", "Report (PDF)"],
];
const NEWLINE = 10;

function countLines(bytes) {
  let n = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === NEWLINE) n++;
  return n;
}

export class ExportMenu {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.busy = false;
    this.progress = h("progress", { class: "export-progress", max: 1, value: 0, hidden: true, "aria-label": "Export progress" });
    this.status = h("output", { class: "export-status muted", "aria-live": "polite" });
    this.buttons = FORMATS.map(([fmt, label]) =>
      h("button", { type: "button", class: "export-format", "data-format": fmt, on: { click: () => this.download(fmt) } }, label),
    );
    this.el = h(
      "details",
      { class: "export-menu" },
      h("summary", {}, "Export"),
      h(
        "div",
        { class: "export-choices" },
        h("div", { class: "export-formats", role: "group", "aria-label": "Export formats" }, this.buttons),
        this.progress,
        this.status,
      ),
    );
  }

  async download(fmt) {
    if (this.busy) return;
    this.busy = true;
    this.buttons.forEach((b) => (b.disabled = true));
    this.progress.hidden = false;
    this.progress.max = 1;
    this.progress.removeAttribute("value"); // indeterminate until the first bytes
    setText(this.status, "Preparing the export…");
    try {
      const blob = await this.fetchExport(fmt);
      const link = h("a", { href: URL.createObjectURL(blob), download: `incident-${this.id}.${fmt}` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      if (!(this.progress.max > 1)) this.progress.max = 1; // a report: bytes, no total
      this.progress.value = this.progress.max;
      setText(this.status, `Exported ${fmt.toUpperCase()} (${Math.ceil(blob.size / 1024)} KB).`);
      this.el.dataset.done = fmt;
    } catch (err) {
      const why = explain(err.error || { code: "network" });
      setText(this.status, `The export failed. ${why.title} ${why.action}`);
    } finally {
      this.busy = false;
      this.buttons.forEach((b) => (b.disabled = false));
    }
  }

  async fetchExport(fmt) {
    const api = this.app.api;
    const headers = {};
    const token = api.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    const path = `/api/v1/incidents/${encodeURIComponent(this.id)}/export?format=${fmt}`;
    let resp;
    try {
      resp = await fetch(api.base + path, { headers, cache: "no-store", credentials: "omit" });
    } catch {
      throw Object.assign(new Error("network"), { error: { code: "network" } });
    }
    if (!resp.ok) {
      let error = { code: "internal" };
      try {
        error = (await resp.json()).error || error;
      } catch {
        /* not JSON: keep the generic error */
      }
      throw Object.assign(new Error(error.code), { error });
    }
    const events = Number(resp.headers.get("X-Liaison-Export-Events") || 0);
    const byLine = fmt === "jsonl" || fmt === "csv";
    const chunks = [];
    let lines = 0;
    let bytes = 0;
    const reader = resp.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      bytes += value.length;
      if (byLine && events) {
        lines += countLines(value);
        this.progress.max = events;
        this.progress.value = Math.min(lines, events);
        setText(this.status, `${Math.min(lines, events)} of ${events} events…`);
      } else {
        setText(this.status, `${Math.ceil(bytes / 1024)} KB received…`);
      }
    }
    const type = resp.headers.get("Content-Type") || "application/octet-stream";
    return new Blob(chunks, { type });
  }
}
