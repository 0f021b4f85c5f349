// KPIs of joint operations for supervisors (SPEC 18.2): a date range, the
// figures from GET /api/v1/kpis as small inline SVG bar charts with their
// numbers beside them, and the same figures as CSV. The server counts only
// what this supervisor's organisation may see.

import { h, setChildren, setText } from "../dom.js";
import { duration } from "../format.js";
import { explain } from "../errors.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const DAY_MS = 86_400_000;
const BAR_W = 260;
const ROW_H = 22;
const LABEL_W = 250;
const LABEL_CHARS = 38;

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

function svgTitle(text) {
  const t = document.createElementNS(SVG_NS, "title");
  t.textContent = text;
  return t;
}

const seconds = (s) => (s === null || s === undefined ? "–" : duration(s * 1000));

/** A horizontal bar chart: rows of {label, value, text}. */
export function barChart(title, rows) {
  const top = Math.max(1, ...rows.map((r) => r.value || 0));
  const height = Math.max(1, rows.length) * ROW_H + 4;
  const chart = svg(
    "svg",
    { class: "bar-chart", role: "img", "aria-label": title, viewBox: `0 0 ${LABEL_W + BAR_W + 90} ${height}`, preserveAspectRatio: "xMinYMin meet" },
    ...rows.map((r, i) => {
      const y = i * ROW_H + 2;
      const w = Math.max(r.value ? 2 : 0, Math.round((BAR_W * (r.value || 0)) / top));
      const label = svg("text", { x: LABEL_W - 6, y: y + 15, "text-anchor": "end", class: "bar-label" });
      label.textContent = r.label.length > LABEL_CHARS ? r.label.slice(0, LABEL_CHARS - 1) + "…" : r.label;
      label.append(svgTitle(r.label));
      const value = svg("text", { x: LABEL_W + w + 6, y: y + 15, class: "bar-value" });
      value.textContent = r.text;
      return svg("g", { class: "bar" }, label, svg("rect", { x: LABEL_W, y: y + 3, width: w, height: ROW_H - 8, rx: 2 }), value);
    }),
  );
  return h("figure", { class: "kpi-chart" }, h("figcaption", {}, title), rows.length ? chart : h("p", { class: "muted" }, "Nothing in this range."));
}

export class KpiView {
  constructor(app, onClose) {
    this.app = app;
    this.onClose = onClose;
    const today = new Date(Date.now() + DAY_MS).toISOString().slice(0, 10);
    const monthAgo = new Date(Date.now() - 30 * DAY_MS).toISOString().slice(0, 10);
    this.from = h("input", { type: "date", name: "from", value: monthAgo, "aria-label": "From" });
    this.to = h("input", { type: "date", name: "to", value: today, "aria-label": "To (exclusive)" });
    this.note = h("p", { class: "kpi-note muted", role: "status" }, "");
    this.charts = h("div", { class: "kpi-charts" });
    this.el = h(
      "section",
      { class: "kpi-view", "aria-label": "KPIs of joint operations" },
      h(
        "header",
        { class: "kpi-head" },
        h("h2", { tabindex: "-1" }, "KPIs of joint operations"),
        h("button", { type: "button", class: "close-kpis", on: { click: () => this.close() } }, "Close"),
      ),
      h(
        "form",
        { class: "kpi-range", on: { submit: (ev) => (ev.preventDefault(), this.load()) } },
        h("label", {}, "From ", this.from),
        h("label", {}, "To ", this.to),
        h("button", { type: "submit", class: "primary" }, "Show"),
        h("button", { type: "button", class: "kpi-csv", on: { click: () => this.downloadCsv() } }, "Download CSV"),
      ),
      this.note,
      this.charts,
    );
    this.load();
  }

  range() {
    return [Date.parse(this.from.value + "T00:00:00Z"), Date.parse(this.to.value + "T00:00:00Z")];
  }

  async load() {
    setText(this.note, "Loading…");
    try {
      const k = await this.app.api.kpis(...this.range());
      this.kpis = k;
      setText(this.note, `${k.incidents} incidents opened in this range that your organisation took part in. Only what your organisation may see is counted.`);
      this.render(k);
    } catch (err) {
      const why = explain(err.error || { code: "network" });
      setText(this.note, `The KPIs could not be loaded. ${why.title} ${why.action}`);
    }
  }

  render(k) {
    const org = (id) => this.app.orgName(id);
    const esc = k.escalations;
    const chk = k.checkins;
    setChildren(
      this.charts,
      barChart(
        "Time to first acknowledgement of urgent messages (median, per organisation)",
        k.acknowledgement.map((r) => ({ label: org(r.org), value: r.median_s, text: `${seconds(r.median_s)} · ${r.count} acks, ${r.unacknowledged} never` })),
      ),
      barChart(
        "Task assigned → accepted (median, per organisation)",
        k.tasks.map((r) => ({ label: org(r.org), value: r.to_accept.median_s, text: `${seconds(r.to_accept.median_s)} · ${r.accepted}/${r.assigned} accepted` })),
      ),
      barChart(
        "Task accepted → done (median, per organisation)",
        k.tasks.map((r) => ({ label: org(r.org), value: r.to_done.median_s, text: `${seconds(r.to_done.median_s)} · ${r.completed} done` })),
      ),
      barChart(
        "Time to resolve (median, by category and priority)",
        k.resolution.map((r) => ({ label: `${r.category} · ${r.priority}`, value: r.median_s, text: `${seconds(r.median_s)} · ${r.resolved}/${r.incidents} resolved` })),
      ),
      barChart(
        "Joint incidents per pair of organisations",
        k.joint.map((r) => ({ label: r.orgs.map(org).join(" + "), value: r.incidents, text: String(r.incidents) })),
      ),
      barChart("Escalations and missed check-ins", [
        { label: "Escalations", value: esc.total, text: String(esc.total) },
        { label: "Missed check-ins", value: chk.missed, text: `${chk.missed} of ${chk.total} check-in events` },
      ]),
    );
  }

  async downloadCsv() {
    try {
      const text = await this.app.api.kpis(...this.range(), true);
      const a = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: "liaison-kpis.csv" });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) {
      setText(this.note, "The CSV could not be downloaded.");
    }
  }

  close() {
    this.el.remove();
    this.onClose();
  }
}
