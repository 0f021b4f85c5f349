// Supervisor replay: the incident's timeline played from the start at 1x,
// 10x or 60x, paused, or sought to any moment; the channel, the task board
// and the map show the state as of that moment. The timeline's hash chain is
// verified on load.

import { h, reconcile, setChildren, setText } from "../dom.js";
import { apply, emptyState } from "../projection.js";
import { verifyChain } from "../chain.js";
import { clock, duration, dateTime, STATUS_LABEL, PRIORITY_LABEL, label } from "../format.js";
import { explain } from "../errors.js";
import { Channel } from "./channel.js";
import { TaskBoard } from "./tasks.js";
import { Responders, MapView } from "./people.js";
import { timelineRows, timelineRow } from "./timeline.js";
import { tlpBadge } from "./tlp.js";
import { ExportMenu } from "./export_menu.js";
import { modeBanner } from "./modes.js";

const SPEEDS = [1, 10, 60];

export class Replay {
  constructor(app, id, onClose) {
    this.app = app;
    this.id = id;
    this.onClose = onClose;
    this.events = null;
    this.times = [];
    this.idx = 0;
    this.state = emptyState(id);
    this.t = 0;
    this.speed = 1;
    this.playing = false;
    this.raf = 0;
    this.dirty = true;
    this.channel = new Channel(app, id, { readOnly: true });
    this.tasks = new TaskBoard(app, id, { readOnly: true });
    this.responders = new Responders(app);
    this.mapView = new MapView(app);
    this.exportMenu = new ExportMenu(app, id);
    this.build();
    this.load();
  }

  build() {
    const summary = this.app.info(this.id);
    this.heading = h("h2", { tabindex: "-1" }, `Replay · ${summary?.title || ""} `, summary ? tlpBadge(summary.tlp) : null);
    this.playButton = h("button", { type: "button", class: "primary play", on: { click: () => this.togglePlay() } }, "Play");
    this.speedButtons = SPEEDS.map((s) =>
      h(
        "button",
        { type: "button", class: "speed", "data-speed": s, "aria-pressed": String(s === this.speed), on: { click: () => this.setSpeed(s) } },
        `${s}×`,
      ),
    );
    this.slider = h("input", {
      type: "range",
      class: "seek",
      min: 0,
      max: 0,
      step: 1000,
      value: 0,
      "aria-label": "Moment in the incident",
      on: { input: () => this.seek(this.t0 + Number(this.slider.value)) },
    });
    this.clockEl = h("output", { class: "replay-clock", "aria-live": "off" });
    this.verifyEl = h("p", { class: "verify muted" }, "Loading the timeline…");
    // The incident at T, from the server's one state-at-T function (the view
    // as of a seq, SPEC 18) that reports use too; the local fold until it answers.
    this.asOfEl = h("div", { class: "as-of", role: "status", "aria-live": "polite" });
    this.eventsList = h("ol", { class: "timeline replay-events", "aria-label": "Events" });
    this.el = h(
      "section",
      { class: "replay", "aria-label": "Replay" },
      modeBanner(summary?.mode), // an exercise replays as one (SPEC 28)
      h(
        "header",
        { class: "replay-head" },
        this.heading,
        this.exportMenu.el,
        h("button", { type: "button", class: "close-replay", on: { click: () => this.close() } }, "Close replay"),
      ),
      h(
        "div",
        { class: "replay-controls", role: "group", "aria-label": "Playback" },
        h("button", { type: "button", class: "to-start", on: { click: () => this.seekIndex(0) } }, "Start"),
        h("button", { type: "button", "aria-label": "Previous event", on: { click: () => this.step(-1) } }, "◀"),
        this.playButton,
        h("button", { type: "button", "aria-label": "Next event", on: { click: () => this.step(1) } }, "▶"),
        h("span", { class: "speeds", role: "group", "aria-label": "Speed" }, this.speedButtons),
        this.slider,
        this.clockEl,
      ),
      this.verifyEl,
      this.asOfEl,
      h(
        "div",
        { class: "replay-body" },
        h("div", { class: "replay-col" }, h("h3", {}, "Channel"), this.channel.el),
        h("div", { class: "replay-col" }, this.tasks.el, this.mapView.el, this.responders.el),
        h("div", { class: "replay-col" }, h("h3", {}, "Events"), this.eventsList),
      ),
    );
    this.el.addEventListener("keydown", (ev) => {
      if (ev.target.tagName === "INPUT" && ev.target.type !== "range") return;
      if (ev.key === " ") {
        ev.preventDefault();
        this.togglePlay();
      } else if (ev.key === "Escape") this.close();
    });
    requestAnimationFrame(() => this.heading.focus());
  }

  async load() {
    try {
      const { events } = await this.app.api.timeline(this.id);
      this.events = events;
      // placeholders carry no time: they take the time of the event before them
      let last = events.find((e) => e.ts)?.ts || Date.now();
      this.times = events.map((e) => (e.ts ? (last = e.ts) : last));
      this.t0 = this.times[0] ?? Date.now();
      this.t1 = this.times[this.times.length - 1] ?? this.t0;
      this.slider.max = String(Math.max(0, this.t1 - this.t0));
      this.seekIndex(0);
      const restricted = events.filter((e) => e.type === "restricted").length;
      setText(this.verifyEl, "Checking the hash chain…");
      const bad = await verifyChain(events);
      setText(
        this.verifyEl,
        bad === null
          ? `Hash chain verified: ${events.length} events${restricted ? ` (${restricted} restricted, links checked)` : ""}, ${dateTime(this.t0)} to ${clock(this.t1, true)}.`
          : `Warning: the hash chain does not verify at event ${bad}. Report this to your administrator.`,
      );
      this.verifyEl.classList.toggle("bad", bad !== null);
    } catch (err) {
      const why = explain(err.error || { code: "network" });
      setText(this.verifyEl, `The timeline could not be loaded. ${why.title} ${why.action}`);
    }
  }

  markDirty() {
    this.dirty = true;
  }

  /** Ask the server for the incident at this seq, once the position settles. */
  askAsOf(seq) {
    if (!seq || seq === this.asOfSeq) return;
    this.asOfSeq = seq;
    clearTimeout(this.asOfTimer);
    this.asOfTimer = setTimeout(async () => {
      try {
        const view = await this.app.api.viewAt(this.id, seq);
        if (this.asOfSeq !== seq) return;
        this.serverAsOf = view;
        this.renderAsOf();
      } catch {
        this.serverAsOf = null; // the local fold stays shown
      }
    }, this.playing ? 400 : 120);
  }

  renderAsOf() {
    const server = this.serverAsOf && this.serverAsOf.as_of.seq === this.asOfSeq ? this.serverAsOf : null;
    const s = server || this.state;
    setChildren(
      this.asOfEl,
      h("span", { class: "as-of-t" }, `At ${clock(this.t, true)} (T):`),
      " status ",
      h("strong", { class: ["as-of-status", "st-" + s.status] }, label(STATUS_LABEL, s.status)),
      " · priority ",
      h("strong", { class: ["as-of-priority", "prio-" + s.priority] }, label(PRIORITY_LABEL, s.priority)),
      h("span", { class: "muted as-of-source", "data-source": server ? "server" : "local" }, server ? ` · as of seq ${server.as_of.seq}, from the server` : " · checking with the server…"),
    );
  }

  /** The state after the first `n` events. */
  moveTo(n) {
    if (n < this.idx) {
      this.state = emptyState(this.id);
      this.idx = 0;
    }
    while (this.idx < n) apply(this.state, this.events[this.idx++]);
    this.dirty = true;
    this.app.schedule();
  }

  seek(t) {
    if (!this.events) return;
    this.t = Math.max(this.t0, Math.min(this.t1, t));
    let n = 0;
    while (n < this.events.length && this.times[n] <= this.t) n++;
    this.moveTo(Math.max(1, n));
  }

  /** To just after event index i (0-based). */
  seekIndex(i) {
    if (!this.events?.length) return;
    const idx = Math.max(0, Math.min(this.events.length - 1, i));
    this.t = this.times[idx];
    this.moveTo(idx + 1);
  }

  step(delta) {
    this.pause();
    this.seekIndex(this.idx - 1 + delta);
  }

  setSpeed(s) {
    this.speed = s;
    for (const b of this.speedButtons) b.setAttribute("aria-pressed", String(Number(b.dataset.speed) === s));
  }

  togglePlay() {
    if (this.playing) this.pause();
    else this.play();
  }

  play() {
    if (!this.events?.length) return;
    if (this.t >= this.t1) this.seekIndex(0);
    this.playing = true;
    setText(this.playButton, "Pause");
    let last = performance.now();
    const tick = (now) => {
      if (!this.playing) return;
      const dt = now - last;
      last = now;
      this.seek(this.t + dt * this.speed);
      if (this.t >= this.t1) {
        this.pause();
        return;
      }
      this.raf = requestAnimationFrame(tick);
    };
    this.raf = requestAnimationFrame(tick);
  }

  pause() {
    this.playing = false;
    cancelAnimationFrame(this.raf);
    setText(this.playButton, "Play");
  }

  close() {
    this.pause();
    this.mapView.destroy();
    this.el.remove();
    this.onClose();
  }

  update() {
    if (!this.events) return;
    const clockText = `${clock(this.t, true)} · ${duration(this.t - this.t0)} of ${duration(this.t1 - this.t0)}`;
    setText(this.clockEl, clockText);
    if (document.activeElement !== this.slider) this.slider.value = String(this.t - this.t0);
    if (!this.dirty) return;
    this.dirty = false;
    const s = this.state;
    this.channel.update(s, []);
    this.tasks.update(s, [], this.t);
    this.responders.update(s, this.t);
    this.mapView.update(s, this.t);
    const shown = this.events.slice(0, this.idx);
    const currentSeq = shown[shown.length - 1]?.seq;
    this.askAsOf(currentSeq);
    this.renderAsOf();
    const tAt = this.t;
    reconcile(
      this.eventsList,
      timelineRows(this.events),
      (r) => (r.restricted ? "r" + r.seq : r.seq),
      (r) => `${r.seq <= (currentSeq ?? 0)}|${r.seq === currentSeq}|${this.app.orgs.size}|${Math.round(tAt / (this.playing ? 10000 : 1000))}`,
      (r) => {
        const li = timelineRow(this.app, s, r, {
          relativeTo: tAt,
          current: r.seq === currentSeq,
          onPick: (env) => {
            this.pause();
            this.seekIndex(this.events.findIndex((e) => e.seq === env.seq));
          },
        });
        if (r.seq > (currentSeq ?? 0)) li.classList.add("future");
        return li;
      },
    );
    const cur = this.eventsList.querySelector("li.current");
    if (cur && this.playing) cur.scrollIntoView({ block: "nearest" });
  }
}
