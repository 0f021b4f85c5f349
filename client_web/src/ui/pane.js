// One incident, worked: header, my status in one tap, channel, task board,
// who is where (list and map), timeline. Wide panes show several sections
// side by side; narrow panes and phones show one section at a time.

import { h, setText, setChildren } from "../dom.js";
import { EXTERNAL_REF_MAX, INCIDENT_STATUSES, PRIORITIES, RESPONDER_STATUSES, externalRefProblem } from "../protocol.js";
import { STATUS_LABEL, PRIORITY_LABEL, RESPONDER_LABEL, label } from "../format.js";
import { Channel } from "./channel.js";
import { TaskBoard } from "./tasks.js";
import { Responders, MapView } from "./people.js";
import { Timeline } from "./timeline.js";
import { ReviewSection } from "./reviews.js";
import { powers, leadOnlyReason } from "../labels.js";
import { tlpBadge, subjectList } from "./tlp.js";
import { SafetyBar } from "./safety.js";
import { modeText } from "./modes.js";
import { ContactsView } from "./contacts_view.js";

const WIDE_MIN_PX = 820;

export class IncidentPane {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.visible = false;
    this.dirty = true;
    this.tab = "channel";
    this.mainTab = "channel";
    this.mode = app.layout === "phone" ? "tabs" : "wide";
    this.channel = new Channel(app, id);
    this.tasks = new TaskBoard(app, id);
    this.responders = new Responders(app);
    this.mapView = new MapView(app);
    this.timeline = new Timeline(app, id);
    this.reviews = new ReviewSection(app, id);
    this.safety = new SafetyBar(app, id);
    this.build();
    this.resizeObserver = new ResizeObserver(() => this.checkMode());
    this.resizeObserver.observe(this.el);
  }

  build() {
    const app = this.app;
    this.title = h("h2", { class: "pane-title", tabindex: "-1" });
    this.badges = h("div", { class: "pane-badges" });
    this.place = h("div", { class: "pane-place muted" });
    this.contactsView = new ContactsView(app, this.id);
    this.orgsLine = this.contactsView.el;
    // "What is known" (the description), in the header where a responder looks first.
    this.known = h("p", {
      class: "pane-known",
      title: "What is known (tap to show all)",
      on: { click: () => this.known.classList.toggle("expanded") },
    });
    this.detailsBody = h("div", { class: "incident-details-body" });
    this.details = h(
      "details",
      { class: "incident-details" },
      h("summary", {}, "Incident details"),
      this.detailsBody,
    );
    const controls = h("div", { class: "pane-controls" });
    if (app.coordinator) {
      this.statusSelect = h(
        "select",
        {
          class: "incident-status",
          "aria-label": "Incident status",
          on: {
            change: () => {
              const value = this.statusSelect.value;
              const state = app.states.get(this.id);
              if (!state || value === state.status) return;
              if (value === "closed" && !confirm("Close this incident? Nothing more can be posted until it is reopened.")) {
                this.statusSelect.value = state.status;
                return;
              }
              app.send({ type: "incident.status", incident: this.id, status: value });
            },
          },
        },
        INCIDENT_STATUSES.map((s) => h("option", { value: s }, STATUS_LABEL[s])),
      );
      this.prioritySelect = h(
        "select",
        {
          class: "incident-priority",
          "aria-label": "Incident priority",
          on: {
            change: () => {
              const value = this.prioritySelect.value;
              const state = app.states.get(this.id);
              if (!state || value === state.priority) return;
              app.send({ type: "incident.update", incident: this.id, priority: value });
            },
          },
        },
        PRIORITIES.map((p) => h("option", { value: p }, PRIORITY_LABEL[p])),
      );
      // The CAD number: a dispatcher types the one their CAD system gave.
      this.refInput = h("input", {
        class: "incident-ref",
        placeholder: "none yet",
        maxlength: EXTERNAL_REF_MAX,
        autocomplete: "off",
        on: {
          change: () => {
            const value = this.refInput.value.trim();
            const state = app.states.get(this.id);
            if (!state || !value || value === state.external_ref) return;
            const problem = externalRefProblem(value);
            if (problem) {
              app.toasts.error(`CAD number: ${problem}.`);
              this.refInput.value = state.external_ref ?? "";
              return;
            }
            app.send({ type: "incident.update", incident: this.id, external_ref: value });
          },
        },
      });
      controls.append(this.prioritySelect, this.statusSelect);
    }
    controls.append(
      h("button", { type: "button", class: "replay-open", on: { click: () => app.openReplay(this.id) } }, "Replay"),
      h(
        "button",
        { type: "button", class: "desk-only pane-close", "aria-label": "Close this incident pane", on: { click: () => app.closePane(this.id) } },
        "Close",
      ),
    );
    const back = h(
      "button",
      { type: "button", class: "phone-only back", "aria-label": "Back to the incident list", on: { click: () => app.backToList() } },
      "‹ Incidents",
    );
    this.head = h(
      "header",
      { class: "pane-head" },
      back,
      h(
        "div",
        { class: "pane-heading" },
        this.title,
        this.badges,
        this.place,
        this.known,
        this.orgsLine,
        this.refInput ? h("label", { class: "pane-ref muted" }, "CAD number ", this.refInput) : null,
        this.details,
      ),
      controls,
    );
    this.statusButtons = new Map();
    this.statusNote = h("span", { class: "status-note muted", "aria-live": "polite" });
    this.statusBar = h(
      "div",
      { class: "status-bar", role: "group", "aria-label": "My status on this incident" },
      h("span", { class: "desk-only muted status-label" }, "My status:"),
      ["en_route", "on_scene", ...RESPONDER_STATUSES.filter((s) => s !== "en_route" && s !== "on_scene")].map((s) => {
        const b = h(
          "button",
          {
            type: "button",
            class: ["my-status", s === "en_route" || s === "on_scene" ? "big" : "small"],
            "data-status": s,
            "aria-pressed": "false",
            on: { click: () => this.setMyStatus(s) },
          },
          RESPONDER_LABEL[s],
        );
        this.statusButtons.set(s, b);
        return b;
      }),
      this.statusNote,
    );
    this.tabButtons = new Map();
    this.tabBar = h(
      "nav",
      { class: "section-tabs", "aria-label": "Sections" },
      [
        ["channel", "Channel"],
        ["tasks", "Tasks"],
        ["map", "Map"],
        ["timeline", "Timeline"],
      ].map(([key, text]) => {
        const count = h("span", { class: "tab-count" });
        const b = h(
          "button",
          { type: "button", class: "section-tab", "data-tab": key, "aria-pressed": "false", on: { click: () => this.showTab(key) } },
          text,
          count,
        );
        b.__count = count;
        this.tabButtons.set(key, b);
        return b;
      }),
    );
    this.mainSwitch = h(
      "div",
      { class: "main-switch", role: "group", "aria-label": "Channel or timeline" },
      h("button", { type: "button", "data-main": "channel", on: { click: () => this.showMain("channel") } }, "Channel"),
      h("button", { type: "button", "data-main": "timeline", on: { click: () => this.showMain("timeline") } }, "Timeline"),
    );
    this.colMain = h("div", { class: "col-main" });
    this.colSide = h("div", { class: "col-side" });
    this.body = h("div", { class: "pane-body" }, this.colMain, this.colSide);
    this.loadingNote = h("p", { class: "empty pane-loading" }, "Loading the incident…");
    this.closedNote = h(
      "p",
      { class: "closed-note", role: "status", hidden: true },
      app.coordinator
        ? "This incident is closed. Change its status to reopen it before posting."
        : "This incident is closed. A dispatcher can reopen it; until then nothing can be posted.",
    );
    // An exercise or a test says so above everything else (SPEC 28).
    this.modeBanner = h("div", { class: "mode-banner", role: "note", hidden: true });
    this.el = h(
      "article",
      { class: "pane", "data-incident": this.id, "aria-label": "Incident" },
      this.modeBanner,
      this.head,
      this.closedNote,
      this.safety.el,
      this.statusBar,
      this.tabBar,
      this.loadingNote,
      this.body,
    );
    this.arrange();
  }

  checkMode() {
    const mode =
      this.app.layout === "phone" || (this.el.clientWidth && this.el.clientWidth < WIDE_MIN_PX) ? "tabs" : "wide";
    if (mode !== this.mode) {
      this.mode = mode;
      this.arrange();
      this.markDirty();
      this.app.schedule();
    }
    this.mapView.resize();
  }

  arrange() {
    this.el.dataset.mode = this.mode;
    this.tabBar.hidden = this.mode === "wide";
    if (this.mode === "wide") {
      setChildren(this.colMain, this.mainSwitch, this.channel.el, this.timeline.el);
      setChildren(this.colSide, this.reviews.el, this.tasks.el, this.mapView.el, this.responders.el);
      this.colSide.hidden = false;
      this.showMain(this.mainTab);
      for (const s of [this.tasks, this.mapView, this.responders]) s.el.hidden = false;
    } else {
      setChildren(this.colMain, this.reviews.el, this.channel.el, this.tasks.el, this.mapView.el, this.responders.el, this.timeline.el);
      setChildren(this.colSide);
      this.colSide.hidden = true;
      this.showTab(this.tab);
    }
  }

  showMain(which) {
    this.mainTab = which;
    this.channel.el.hidden = which !== "channel";
    this.timeline.el.hidden = which !== "timeline";
    for (const b of this.mainSwitch.children) b.setAttribute("aria-pressed", String(b.dataset.main === which));
    this.markDirty();
    this.app.schedule();
  }

  showTab(key) {
    this.tab = key;
    if (this.mode === "wide") {
      if (key === "channel" || key === "timeline") this.showMain(key);
      return;
    }
    this.channel.el.hidden = key !== "channel";
    this.tasks.el.hidden = key !== "tasks";
    this.responders.el.hidden = key !== "map";
    this.mapView.el.hidden = key !== "map";
    this.timeline.el.hidden = key !== "timeline";
    for (const [k, b] of this.tabButtons) b.setAttribute("aria-pressed", String(k === key));
    if (key === "map") this.mapView.resize();
    this.markDirty();
    this.app.schedule();
  }

  setVisible(visible, active) {
    this.visible = visible;
    this.el.classList.toggle("active", !!active);
    if (visible) {
      this.checkMode();
      this.markDirty();
    }
  }

  markDirty() {
    this.dirty = true;
  }

  /** Make a section visible (a tab in narrow panes, the main column's switch in wide ones). */
  reveal(section) {
    if (this.mode === "tabs") this.showTab(section);
    else if (section === "channel" || section === "timeline") this.showMain(section);
  }

  channelShown() {
    return !this.channel.el.hidden;
  }

  focus() {
    requestAnimationFrame(() => this.title.focus({ preventScroll: true }));
  }

  onEvent(env) {
    this.timeline.onEvent(env);
    this.dirty = true;
  }

  /** One tap: my status on this incident, with my position if sharing is on. */
  setMyStatus(status) {
    const cmd = { type: "responder.status", incident: this.id, status };
    const position = this.app.geo.current();
    if (position) cmd.position = position;
    this.app.send(cmd);
  }

  myStatus(state, pending) {
    const queued = pending.filter((i) => i.cmd.type === "responder.status").pop();
    if (queued) return { status: queued.cmd.status, queued: true };
    return { status: state.responders.get(this.app.me.id)?.status || null, queued: false };
  }

  update() {
    if (!this.visible) return;
    const app = this.app;
    const held = app.states.get(this.id);
    const state = held && held.seq > 0 ? held : null; // seq 1 (incident.created) is always visible
    const pending = app.pendingFor(this.id);
    const signature = `${held?.rev}|${pending.map((i) => i.id + i.state).join(",")}|${app.sync?.status}|${app.orgs.size}|${Math.floor(Date.now() / 15000)}`;
    if (!this.dirty && signature === this.signature) return;
    this.dirty = false;
    this.signature = signature;
    this.loadingNote.hidden = !!state;
    this.body.hidden = !state;
    this.statusBar.hidden = !state;
    if (!state) {
      const summary = app.summaries.get(this.id);
      setText(this.title, summary?.title || "Loading…");
      return;
    }
    setText(this.title, state.title);
    this.el.dataset.status = state.status;
    this.el.dataset.incidentMode = state.mode; // not data-mode: that is the layout (tabs|columns)
    this.modeBanner.hidden = !modeText(state.mode);
    setText(this.modeBanner, modeText(state.mode) || "");
    const closed = state.status === "closed";
    this.closedNote.hidden = !closed;
    this.channel.setClosed(closed);
    for (const b of this.statusButtons.values()) b.disabled = closed;
    setChildren(
      this.badges,
      tlpBadge(state.tlp),
      h("span", { class: ["prio", "prio-" + state.priority] }, label(PRIORITY_LABEL, state.priority)),
      h("span", { class: ["status", "st-" + state.status] }, label(STATUS_LABEL, state.status)),
      h("span", { class: "category" }, state.category),
      state.external_ref ? h("span", { class: "ext-ref", title: "CAD number" }, `CAD ${state.external_ref}`) : null,
    );
    setText(this.place, state.location?.address || (state.location ? `${state.location.lat.toFixed(5)}, ${state.location.lon.toFixed(5)}` : "No location"));
    this.contactsView.update(state);
    setText(this.known, state.description ? `What is known: ${state.description}` : "");
    this.known.hidden = !state.description;
    this.renderDetails(state);
    this.safety.update(state, pending);
    this.applyPowers(state);
    if (this.statusSelect && document.activeElement !== this.statusSelect) this.statusSelect.value = state.status;
    if (this.prioritySelect && document.activeElement !== this.prioritySelect) this.prioritySelect.value = state.priority;
    if (this.refInput && document.activeElement !== this.refInput) this.refInput.value = state.external_ref ?? "";
    const mine = this.myStatus(state, pending);
    for (const [s, b] of this.statusButtons) {
      const on = mine.status === s;
      b.setAttribute("aria-pressed", String(on));
      b.classList.toggle("queued", on && mine.queued);
    }
    setText(
      this.statusNote,
      mine.queued
        ? app.sync?.status === "online"
          ? "Sending your status…"
          : "Your status is queued and will be sent when the connection is back."
        : "",
    );
    const c = app.counts(this.id);
    setText(this.tabButtons.get("channel").__count, c.unacked ? ` ${c.unacked}!` : c.unread ? ` ${c.unread}` : "");
    const openTasks = [...state.tasks.values()].filter((t) => !["completed", "cancelled"].includes(t.status)).length;
    setText(this.tabButtons.get("tasks").__count, openTasks ? ` ${openTasks}` : "");
    if (!this.channel.el.hidden) {
      this.channel.update(state, pending);
      if (document.visibilityState === "visible") app.markRead(this.id);
    }
    if (!this.tasks.el.hidden) this.tasks.update(state, pending);
    this.reviews.update(state);
    if (!this.responders.el.hidden) this.responders.update(state);
    if (!this.mapView.el.hidden) this.mapView.update(state);
    if (!this.timeline.el.hidden) this.timeline.update(state);
  }

  /** Description and the person the incident is about, redacted fields said so. */
  renderDetails(state) {
    const key = `${state.description}|${JSON.stringify(state.subject)}`;
    if (key === this.detailsKey) return;
    this.detailsKey = key;
    const subject = subjectList(state.subject, { heading: "The person this incident is about" });
    setChildren(
      this.detailsBody,
      state.description ? h("p", { class: "description" }, state.description) : h("p", { class: "muted" }, "No description."),
      subject ? [h("h4", {}, "Person"), subject] : null,
    );
  }

  /**
   * A partner organisation's coordinator does not change what the incident
   * is (SPEC 8.0): its status and priority controls are disabled, with the
   * reason as their tooltip. The server refuses them anyway.
   */
  applyPowers(state) {
    const may = powers(state, this.app.me);
    const why = may.lead ? null : leadOnlyReason(state, (o) => this.app.orgName(o));
    for (const [select, allowed] of [
      [this.statusSelect, may.changeStatus],
      [this.prioritySelect, may.editIncident],
      [this.refInput, may.editIncident],
    ]) {
      if (!select) continue;
      select.disabled = !allowed;
      if (allowed) select.removeAttribute("title");
      else select.title = why;
    }
    if (this.app.coordinator) {
      setText(
        this.closedNote,
        may.changeStatus
          ? "This incident is closed. Change its status to reopen it before posting."
          : `This incident is closed. ${leadOnlyReason(state, (o) => this.app.orgName(o)).replace("change this", "reopen it")} Until then nothing can be posted.`,
      );
    }
  }

  destroy() {
    this.resizeObserver.disconnect();
    this.mapView.destroy();
    this.el.remove();
  }
}
