// The application: session, data (incident list, followed incidents), the
// live channel, layout (desk or phone) and rendering.

import { h, setChildren, setText, batched } from "../dom.js";
import { Api, ApiError } from "../api.js";
import { Sync } from "../sync.js";
import { Persistence } from "../persist.js";
import { apply, emptyState, counts } from "../projection.js";
import { COORDINATOR_ROLES, CommandInvalid } from "../protocol.js";
import { explain } from "../errors.js";
import { IncidentList } from "./list.js";
import { IncidentPane } from "./pane.js";
import { Toasts } from "./toasts.js";
import { NewIncidentDialog } from "./forms.js";
import { Geo } from "./geo.js";
import { installShortcuts, ShortcutHelp } from "./shortcuts.js";

const DESK_QUERY = "(min-width: 900px)";
const LIST_POLL_MS = 5000;
/** Incidents held live (with counts) besides the open ones: fewer on a phone. */
const MAX_FOLLOWED = { desk: 50, phone: 10 };

export class App {
  constructor(root, { store, io, tileUrl }) {
    this.root = root;
    this.store = store;
    this.io = io;
    this.tileUrl = tileUrl;
    this.token = null;
    this.expires = 0;
    this.me = null;
    this.api = new Api("", () => this.token);
    this.sync = null;
    this.orgs = new Map();
    this.people = new Map();
    this.summaries = new Map();
    this.states = new Map();
    this.read = new Map();
    this.panes = new Map(); // id -> IncidentPane
    this.paneOrder = [];
    this.active = null;
    this.filters = { q: "", status: "open", priority: "", mine: false };
    this.layout = matchMedia(DESK_QUERY).matches ? "desk" : "phone";
    this.phoneView = "list";
    this.replay = null;
    this.dirty = true;
    this.frame = 0;
    this.toasts = new Toasts();
    this.geo = new Geo(this);
    this.listTimer = 0;
    this.openOnAck = new Map(); // client id of an incident.create -> its "opening" toast
    this.saveStates = batched(() => this.persistStates(), 1200);
    this.dirtyStates = new Set();
    this.persistence = new Persistence({ onChange: () => this.schedule() });
    if (store.memory) this.persistence.fail("everything", store.openError || "IndexedDB unavailable");
  }

  // ------------------------------------------------------------------- boot

  async boot() {
    matchMedia(DESK_QUERY).addEventListener("change", (e) => {
      this.layout = e.matches ? "desk" : "phone";
      this.applyLayout();
    });
    window.addEventListener("online", () => this.sync?.goOnline());
    window.addEventListener("hashchange", () => {
      const id = this.linkedIncident();
      if (id && this.me && id !== this.active) this.openIncident(id);
    });
    window.addEventListener("offline", () => this.sync?.goOffline());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        this.refreshList();
        this.schedule();
      } else {
        // A phone may kill a page in the background without another event.
        this.flushPersistence();
      }
    });
    window.addEventListener("pagehide", () => this.flushPersistence());
    const session = await this.store.get("session");
    if (session?.token && session.expires * 1000 > Date.now() + 60_000) {
      await this.startSession(session);
    } else {
      this.showLogin(session?.user ? "Your session has ended. Sign in again." : null, session?.user);
    }
  }

  // ------------------------------------------------------------------ login

  showLogin(message, lastUser) {
    document.body.dataset.screen = "login";
    const error = h("p", { class: "login-error", role: "alert" });
    if (message) setText(error, message);
    const username = h("input", {
      id: "login-user",
      name: "username",
      autocomplete: "username",
      autocapitalize: "none",
      spellcheck: "false",
      required: true,
      value: lastUser?.username || "",
    });
    const password = h("input", {
      id: "login-password",
      name: "password",
      type: "password",
      autocomplete: "current-password",
      required: true,
    });
    const button = h("button", { type: "submit", class: "primary big" }, "Sign in");
    const form = h(
      "form",
      {
        class: "login-form",
        on: {
          submit: async (ev) => {
            ev.preventDefault();
            button.disabled = true;
            setText(error, "");
            try {
              const data = await this.api.login(username.value.trim(), password.value);
              const session = { token: data.token, expires: data.expires, user: data.user };
              // Not saved: this tab still works; a reload asks to sign in again.
              await this.save("session", () => this.store.set("session", session));
              if (this.me) {
                // Signed in again after a session ended: start clean from the
                // stored session (the outbox waits in IndexedDB).
                location.reload();
                return;
              }
              await this.startSession({ token: data.token, expires: data.expires, user: data.user });
            } catch (err) {
              const e = err instanceof ApiError ? err : null;
              const why = explain(
                e?.code === "unauthenticated" ? { code: "wrong_password" } : e?.error || { code: "network" },
              );
              setText(error, `${why.title} ${why.action}`);
              button.disabled = false;
              password.select();
            }
          },
        },
      },
      h("h1", { class: "brand" }, "Liaison"),
      h("p", { class: "login-sub" }, "Joint incident coordination"),
      h("label", { for: "login-user" }, "User name"),
      username,
      h("label", { for: "login-password" }, "Password"),
      password,
      button,
      error,
    );
    setChildren(this.root, h("main", { class: "login" }, form));
    (lastUser ? password : username).focus();
    performance.mark("liaison-login-ready");
  }

  async startSession(session) {
    this.token = session.token;
    this.expires = session.expires;
    const u = session.user;
    this.me = { id: u.id, org: u.org, role: u.role, name: u.name, username: u.username };
    this.coordinator = COORDINATOR_ROLES.has(this.me.role);
    document.body.dataset.screen = "app";
    await this.restore();
    this.buildShell();
    this.sync = new Sync({
      io: this.io,
      url: location.origin,
      store: this.store,
      getToken: () => this.token,
      user: this.me,
      online: () => navigator.onLine,
      persist: (what, write) => this.save(what, write),
    });
    this.wireSync();
    for (const [id, state] of this.states) this.sync.positions.set(id, state.epoch, state.seq);
    await this.sync.start();
    this.pickStartView();
    this.schedule();
    this.refreshList();
    this.loadDirectory();
    this.listTimer = setInterval(() => {
      if (document.visibilityState === "visible" && this.sync?.status === "online") this.refreshList();
    }, LIST_POLL_MS);
  }

  async signOut() {
    const waiting = this.sync?.queued().length || 0;
    if (
      waiting &&
      !confirm(
        `${waiting} change(s) are not sent yet. They stay on this device and are sent when you sign in again. Sign out?`,
      )
    ) {
      return;
    }
    this.teardown();
    await this.flushPersistence();
    // Nothing of the incidents stays on a shared device; only what this person
    // queued (the outbox) waits for their next sign-in.
    const erased = await this.save("sign-out", async () => {
      await this.store.delete("session");
      for (const key of await this.store.keys(this.key(""))) await this.store.delete(key);
    });
    if (!erased) {
      this.toasts.error(
        "This device could not erase its copy of the incidents.",
        "Close the browser, or clear this site's data in its settings.",
      );
      return;
    }
    location.reload();
  }

  teardown() {
    clearInterval(this.listTimer);
    this.geo.stop();
    this.sync?.stop();
    this.sync = null;
  }

  // ------------------------------------------------------------ persistence

  key(name) {
    return `u:${this.me.id}:${name}`;
  }

  async restore() {
    const [orgs, people, list, read, ui] = await Promise.all([
      this.store.get(this.key("orgs")),
      this.store.get(this.key("people")),
      this.store.get(this.key("list")),
      this.store.get(this.key("read")),
      this.store.get(this.key("ui")),
    ]);
    if (orgs) this.orgs = orgs;
    if (people) this.people = people;
    if (list) for (const s of list) this.summaries.set(s.id, s);
    if (read) this.read = read;
    if (ui?.filters) this.filters = { ...this.filters, ...ui.filters };
    this.savedUi = ui || {};
    for (const key of await this.store.keys(this.key("state:"))) {
      const state = await this.store.get(key);
      if (state?.id) this.states.set(state.id, state);
    }
  }

  persistStates() {
    if (!this.me) return;
    for (const id of this.dirtyStates) {
      const state = this.states.get(id);
      if (state) this.save(`incident ${id}`, () => this.store.set(this.key(`state:${id}`), state));
    }
    this.dirtyStates.clear();
    this.save("read markers", () => this.store.set(this.key("read"), this.read));
    this.persistUi();
  }

  /** Write through the persistence tracker: a failure is logged and shown, never lost. */
  save(what, write) {
    return this.persistence.track(what, write);
  }

  /** Write everything now and resolve once it is on disk (page hide, sign-out, tests). */
  async flushPersistence() {
    this.saveStates.flush();
    return this.persistence.idle();
  }

  persistUi() {
    if (!this.me) return;
    const ui = { filters: this.filters, panes: this.paneOrder, active: this.active };
    this.save("layout", () => this.store.set(this.key("ui"), ui));
  }

  // ------------------------------------------------------------------- data

  async loadDirectory() {
    try {
      const [orgs, users] = await Promise.all([this.api.orgs(), this.api.users()]);
      this.orgs = new Map(orgs.orgs.map((o) => [o.id, o]));
      for (const u of users.users) this.people.set(u.id, { name: u.name, org: u.org });
      this.save("organisations", () => this.store.set(this.key("orgs"), this.orgs));
      this.save("people", () => this.store.set(this.key("people"), this.people));
      this.schedule();
    } catch (err) {
      this.handleApiError(err, true);
    }
  }

  async refreshList() {
    if (!this.me || this.refreshing) return;
    this.refreshing = true;
    try {
      const data = await this.api.incidents();
      const seen = new Set();
      for (const s of data.incidents) {
        seen.add(s.id);
        this.summaries.set(s.id, s);
      }
      if (data.complete) for (const id of [...this.summaries.keys()]) if (!seen.has(id)) this.forget(id);
      const list = [...this.summaries.values()];
      this.save("incident list", () => this.store.set(this.key("list"), list));
      this.followActive();
      this.schedule();
    } catch (err) {
      this.handleApiError(err, true);
    } finally {
      this.refreshing = false;
    }
  }

  /** Follow the most recently updated open incidents (and every open pane). */
  followActive() {
    const wanted = [...this.summaries.values()]
      .filter((s) => s.status !== "closed")
      .sort((a, b) => b.updated - a.updated)
      .slice(0, MAX_FOLLOWED[this.layout])
      .map((s) => s.id);
    for (const id of [...wanted, ...this.paneOrder]) this.ensureLoaded(id);
  }

  /**
   * Hold an incident: its state is the fold of the events this organisation
   * receives, from seq 1 (the backlog arrives over the live channel, then live
   * events). Deliberately not seeded from the REST incident view, whose
   * projection can show content of narrower follow-up events (see the report
   * in client_web/README.md).
   */
  ensureLoaded(id) {
    let state = this.states.get(id);
    if (!state) {
      state = emptyState(id);
      this.states.set(id, state);
      this.schedule();
    }
    if (!this.sync.positions.has(id)) this.sync.follow(id, state.epoch, state.seq);
    return Promise.resolve(state);
  }

  forget(id) {
    this.summaries.delete(id);
    this.states.delete(id);
    this.save(`incident ${id}`, () => this.store.delete(this.key(`state:${id}`)));
    this.sync?.unfollow(id);
    if (this.panes.has(id)) this.closePane(id);
    this.schedule();
  }

  wireSync() {
    const sync = this.sync;
    sync.on("status", () => this.schedule());
    sync.on("outbox", () => this.schedule());
    sync.on("welcome", () => {
      if (!performance.getEntriesByName("liaison-online").length) performance.mark("liaison-online");
      this.refreshList();
    });
    sync.on("events", (id, envs) => this.onEvents(id, envs));
    sync.on("resync", (id, epoch, why) => {
      this.states.set(id, emptyState(id, epoch));
      this.markStateDirty(id);
      if (why === "out_of_range") console.warn(`incident ${id}: server is behind our position`);
      this.schedule();
    });
    sync.on("gone", (id) => {
      const title = this.summaries.get(id)?.title || "An incident";
      this.toasts.info(`${title} is no longer available to your organisation.`);
      this.forget(id);
    });
    sync.on("acked", (item, ack) => this.onAcked(item, ack));
    sync.on("failed", (item, error) => this.onFailed(item, error));
    sync.on("unauthenticated", () => this.sessionEnded());
    sync.on("refused", (error) => {
      const why = explain(error);
      this.toasts.error(why.title, why.action);
    });
    sync.on("notice", (notice) => {
      if (notice.code === "slow_consumer") this.toasts.info("Catching up after a slow connection…");
      if (notice.code === "shutdown") this.toasts.info("The server is restarting — reconnecting…");
    });
  }

  onEvents(id, envs) {
    let state = this.states.get(id);
    if (!state) return;
    const me = this.me;
    // A first backlog (the incident was just taken up) raises no alerts.
    const live = state.seq > 0;
    for (const env of envs) {
      if (env.seq <= state.seq) continue;
      if (env.seq !== state.seq + 1) {
        // Our state and the follow position disagree: resume from the state.
        this.sync.positions.set(id, state.epoch, state.seq);
        this.sync.refollow([id]);
        break;
      }
      apply(state, env);
      const pane = this.panes.get(id);
      if (pane) pane.onEvent(env);
      if (env.type === "message.acknowledged" && env.actor?.user === me.id) this.clearUrgent(id, env.body.message);
      if (
        live &&
        env.type === "message.posted" &&
        env.body?.urgent &&
        env.actor?.user !== me.id &&
        Date.now() - env.ts < 120_000
      ) {
        this.alertUrgent(state, env);
      }
    }
    const summary = this.summaries.get(id);
    if (summary) {
      Object.assign(summary, {
        title: state.title,
        status: state.status,
        priority: state.priority,
        seq: state.seq,
        updated: Math.max(summary.updated || 0, state.updated || 0),
        location: state.location,
        orgs: state.orgs,
      });
    }
    this.markStateDirty(id);
    this.maybeAutoOpen();
    this.schedule();
  }

  markStateDirty(id) {
    this.dirtyStates.add(id);
    this.saveStates();
  }

  alertUrgent(state, env) {
    if (navigator.vibrate && this.layout === "phone") navigator.vibrate([120, 60, 120]);
    const pane = this.panes.get(state.id);
    if (pane?.visible && pane.channelShown() && document.visibilityState === "visible") return;
    const org = this.orgName(env.actor.org);
    const key = `${state.id}:${env.seq}`;
    this.urgentToasts ??= new Map();
    const node = this.toasts.urgent(`Urgent from ${env.actor.name} (${org}) — ${state.title}`, env.body.text, [
      { label: "Open", run: () => this.openIncident(state.id) },
      {
        label: "Acknowledge",
        run: () => this.send({ type: "message.ack", incident: state.id, message: env.seq }),
      },
    ]);
    this.urgentToasts.set(key, node);
  }

  /** An urgent message I acknowledged (here or on another device) needs no alert any more. */
  clearUrgent(incident, seq) {
    const key = `${incident}:${seq}`;
    this.urgentToasts?.get(key)?.remove();
    this.urgentToasts?.delete(key);
  }

  onAcked(item, ack) {
    if (item.cmd.type === "incident.create") {
      const id = ack.incident;
      this.ensureLoaded(id).then(() => {
        if (this.openOnAck.has(item.id)) {
          this.openOnAck.get(item.id)?.remove();
          this.openOnAck.delete(item.id);
          this.openIncident(id);
        }
      });
      this.refreshList();
    }
    this.schedule();
  }

  onFailed(item, error) {
    const why = explain(error, item.cmd.type);
    this.toasts.error(why.title, why.action);
    // A message that was refused stays (marked "not sent") so its text is not
    // lost; other actions are dropped: the screen shows the current state.
    if (item.cmd.type !== "message.post") this.sync.drop(item.id);
    if (error.code === "unauthenticated") this.sessionEnded();
    this.schedule();
  }

  sessionEnded() {
    const user = this.me;
    this.teardown();
    this.save("session", () => this.store.delete("session"));
    this.showLogin("Your session has ended. Sign in again — queued changes are kept and sent afterwards.", user);
  }

  handleApiError(err, quiet = false) {
    if (!(err instanceof ApiError)) {
      console.error(err);
      return;
    }
    if (err.code === "unauthenticated") {
      this.sessionEnded();
      return;
    }
    if (quiet && err.code === "network") return;
    const why = explain(err.error);
    this.toasts.error(why.title, why.action);
  }

  // ---------------------------------------------------------------- actions

  /**
   * Queue a write: validated now (the person learns at once if it cannot be
   * sent), stored in the outbox, sent when connected. Returns the outbox item.
   */
  async send(cmd) {
    if (cmd.type === "message.ack") this.clearUrgent(cmd.incident, cmd.message);
    try {
      return await this.sync.enqueue(cmd);
    } catch (err) {
      if (err instanceof CommandInvalid) {
        const why = explain(err.toWire(), cmd.type);
        this.toasts.error(why.title, why.action);
        return null;
      }
      throw err;
    }
  }

  pendingFor(id) {
    return this.sync ? this.sync.outbox.filter((i) => i.incident === id) : [];
  }

  /** What is known of an incident: its state once loaded, else the list's summary. */
  info(id) {
    const held = this.states.get(id);
    return held?.seq ? held : this.summaries.get(id) || null;
  }

  orgName(id) {
    return this.orgs.get(id)?.name || id;
  }

  orgKind(id) {
    return this.orgs.get(id)?.kind || "other";
  }

  personName(state, user) {
    return state?.people.get(user)?.name || this.people.get(user)?.name || user;
  }

  counts(id) {
    const state = this.states.get(id);
    if (!state) return { unread: 0, unacked: 0, myTasks: 0 };
    return counts(state, this.me, this.read.get(id) || 0);
  }

  markRead(id) {
    const state = this.states.get(id);
    if (!state || (this.read.get(id) || 0) >= state.seq) return;
    this.read.set(id, state.seq);
    this.saveStates();
    this.listView?.markDirty();
    this.schedule();
  }

  // --------------------------------------------------------------- panes

  openIncident(id, { focus = true } = {}) {
    this.autoOpen = false;
    this.ensureLoaded(id);
    if (!this.panes.has(id)) {
      const pane = new IncidentPane(this, id);
      this.panes.set(id, pane);
      this.paneOrder.push(id);
    } else {
      this.paneOrder = [...this.paneOrder.filter((p) => p !== id), id];
    }
    this.active = id;
    this.phoneView = "incident";
    this.replay?.close();
    history.replaceState(null, "", `#/incident/${encodeURIComponent(id)}`);
    this.persistUi();
    this.applyLayout();
    if (focus) this.panes.get(id).focus();
  }

  closePane(id) {
    const pane = this.panes.get(id);
    if (!pane) return;
    pane.destroy();
    this.panes.delete(id);
    this.paneOrder = this.paneOrder.filter((p) => p !== id);
    if (this.active === id) this.active = this.paneOrder[this.paneOrder.length - 1] || null;
    if (!this.active) this.phoneView = "list";
    history.replaceState(null, "", this.active ? `#/incident/${encodeURIComponent(this.active)}` : "#");
    this.persistUi();
    this.applyLayout();
  }

  backToList() {
    this.phoneView = "list";
    history.replaceState(null, "", "#");
    this.applyLayout();
    this.listView.focus();
  }

  async openReplay(id) {
    const { Replay } = await import("./replay.js");
    this.replay?.close();
    this.replay = new Replay(this, id, () => {
      this.replay = null;
      this.applyLayout();
    });
    this.applyLayout();
  }

  newIncident() {
    if (!this.coordinator) return;
    new NewIncidentDialog(this).open();
  }

  /** A link to an incident: /#/incident/<id>. */
  linkedIncident() {
    const m = /^#\/incident\/([^/?#]+)$/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : null;
  }

  /** On a phone, open the incident the person is working first. */
  pickStartView() {
    const linked = this.linkedIncident();
    if (linked) {
      this.openIncident(linked, { focus: false });
      return;
    }
    const saved = (this.savedUi?.panes || []).filter((id) => this.summaries.has(id) || this.states.has(id));
    if (this.layout === "desk") {
      for (const id of saved) this.openIncident(id, { focus: false });
      if (this.savedUi?.active && this.panes.has(this.savedUi.active)) this.active = this.savedUi.active;
      this.applyLayout();
      return;
    }
    const current = this.currentIncident(saved);
    if (current) this.openIncident(current, { focus: false });
    else {
      // Nothing known yet: open the incident the person works on once it has loaded.
      this.autoOpen = true;
      setTimeout(() => (this.autoOpen = false), 15_000);
      this.applyLayout();
    }
  }

  maybeAutoOpen() {
    if (!this.autoOpen || this.layout !== "phone" || this.phoneView !== "list") return;
    const id = this.currentIncident();
    if (id) {
      this.autoOpen = false;
      this.openIncident(id, { focus: false });
    }
  }

  currentIncident(saved = []) {
    const open = (id) => this.info(id)?.status !== "closed";
    const last = saved[saved.length - 1];
    if (last && open(last)) return last;
    let best = null;
    for (const [id, state] of this.states) {
      if (!open(id)) continue;
      const mine = state.responders.get(this.me.id);
      const engaged =
        (mine && (mine.status === "en_route" || mine.status === "on_scene")) ||
        counts(state, this.me).myTasks > 0;
      if (engaged && (!best || state.updated > best.updated)) best = state;
    }
    return best?.id || null;
  }

  // ---------------------------------------------------------------- layout

  buildShell() {
    this.connEl = h("span", {
      class: "conn",
      id: "conn",
      role: "status",
      "aria-live": "polite",
      "data-state": "offline",
    });
    this.geoButton = h(
      "button",
      {
        class: "geo-toggle",
        type: "button",
        "aria-pressed": "false",
        title: "Share my position with the incidents I work on",
        on: { click: () => this.geo.toggle() },
      },
      "Share position: off",
    );
    const userChip = h(
      "span",
      { class: "user-chip" },
      h("span", { class: "user-name" }, this.me.name),
      h("span", { class: ["badge", "org", "kind-" + this.orgKind(this.me.org)], "data-org": this.me.org }, this.orgName(this.me.org)),
    );
    this.userOrgBadge = userChip.lastChild;
    const menu = h(
      "div",
      { class: "header-actions" },
      this.geoButton,
      h(
        "button",
        {
          type: "button",
          class: "desk-only",
          title: "Keyboard shortcuts (?)",
          on: { click: () => this.help.toggle() },
        },
        "Shortcuts",
      ),
      h("button", { type: "button", on: { click: () => this.signOut() } }, "Sign out"),
    );
    this.header = h(
      "header",
      { class: "topbar" },
      h("span", { class: "brand" }, "Liaison"),
      this.connEl,
      userChip,
      menu,
    );
    this.listView = new IncidentList(this);
    this.workspace = h("section", { class: "workspace", "aria-label": "Open incidents" });
    this.tabs = h("nav", { class: "pane-tabs", "aria-label": "Open incidents" });
    this.paneGrid = h("div", { class: "pane-grid" });
    this.emptyWorkspace = h(
      "div",
      { class: "workspace-empty" },
      h("p", {}, "Open an incident from the list."),
      h(
        "p",
        { class: "hint desk-only" },
        "Keys: j / k to move, Enter to open, / to search, ? for every shortcut.",
      ),
    );
    this.workspace.append(this.tabs, this.paneGrid, this.emptyWorkspace);
    this.replaySlot = h("section", { class: "replay-slot", hidden: true });
    this.main = h("main", { class: "main" }, this.listView.el, this.workspace, this.replaySlot);
    this.help = new ShortcutHelp();
    setChildren(this.root, this.header, this.main, this.toasts.el, this.help.el);
    installShortcuts(this);
    this.applyLayout();
  }

  applyLayout() {
    if (!this.main) return;
    document.body.dataset.layout = this.layout;
    const replaying = !!this.replay;
    this.replaySlot.hidden = !replaying;
    if (replaying && this.replay.el.parentNode !== this.replaySlot) {
      setChildren(this.replaySlot, this.replay.el);
    }
    if (this.layout === "phone") {
      const showPane = !replaying && this.phoneView === "incident" && this.active && this.panes.has(this.active);
      this.listView.el.hidden = replaying || showPane;
      this.workspace.hidden = !showPane;
    } else {
      this.listView.el.hidden = false;
      this.workspace.hidden = replaying;
    }
    this.layoutPanes();
    this.schedule();
  }

  visiblePaneIds() {
    if (this.layout === "phone") return this.active ? [this.active] : [];
    const width = this.workspace.clientWidth || window.innerWidth - 320;
    const slots = Math.max(1, Math.min(3, Math.floor(width / 540)));
    const order = [...this.paneOrder];
    // the active pane and the most recently used others
    const recent = order.reverse().filter((id) => id !== this.active);
    return [this.active, ...recent].filter(Boolean).slice(0, slots);
  }

  layoutPanes() {
    const visible = this.visiblePaneIds();
    const ordered = this.paneOrder.filter((id) => visible.includes(id));
    setChildren(this.paneGrid, ...ordered.map((id) => this.panes.get(id).el));
    this.paneGrid.style.setProperty("--panes", String(Math.max(1, ordered.length)));
    for (const [id, pane] of this.panes) pane.setVisible(visible.includes(id), id === this.active);
    this.emptyWorkspace.hidden = this.panes.size > 0;
    this.tabs.hidden = this.layout === "phone" || this.panes.size < 2;
    setChildren(
      this.tabs,
      ...this.paneOrder.map((id, i) => {
        const state = this.info(id);
        return h(
          "span",
          { class: ["pane-tab", id === this.active && "active", visible.includes(id) && "shown"] },
          h(
            "button",
            { type: "button", class: "tab-open", on: { click: () => this.openIncident(id) } },
            `${i + 1}. ${state?.title || "Loading…"}`,
          ),
          h(
            "button",
            {
              type: "button",
              class: "tab-close",
              "aria-label": `Close ${state?.title || "incident"}`,
              on: { click: () => this.closePane(id) },
            },
            "×",
          ),
        );
      }),
    );
  }

  // ---------------------------------------------------------------- render

  schedule() {
    this.dirty = true;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    if (!this.dirty || !this.main) return;
    this.dirty = false;
    this.renderConnection();
    setText(this.userOrgBadge, this.orgName(this.me.org));
    this.userOrgBadge.className = `badge org kind-${this.orgKind(this.me.org)}`;
    this.listView.update();
    for (const pane of this.panes.values()) pane.update();
    this.replay?.update();
    this.geo.render();
    if (!this.interactive) {
      // the shell is on screen with its handlers attached
      this.interactive = true;
      performance.mark("liaison-interactive");
    }
  }

  renderConnection() {
    const sync = this.sync;
    const status = sync?.status || "offline";
    const queued = sync ? sync.queued().length : 0;
    const failed = sync ? sync.outbox.length - queued : 0;
    const q = queued ? ` · ${queued} queued` : "";
    const text =
      {
        online: queued ? `Online · sending ${queued}` : "Online",
        connecting: `Connecting…${q}`,
        reconnecting: `Reconnecting…${q}`,
        offline: `Offline${q}`,
        signed_out: `Signed out${q}`,
        refused: "Not connected: app and server versions differ",
      }[status] || status;
    const saved = this.persistence.state;
    this.connEl.dataset.state = status;
    this.connEl.dataset.queued = String(queued);
    this.connEl.dataset.saved = saved;
    const parts = [text];
    if (failed) parts.push(`${failed} not sent`);
    if (saved === "failed") parts.push("not saved on this device");
    setText(this.connEl, parts.join(" · "));
    this.connEl.title =
      saved === "failed"
        ? `${this.persistence.describe()} What you do is still sent while this page stays open; a reload would lose what is not sent yet.`
        : status === "offline"
          ? "No network. What you do is kept on this device and sent when the connection is back."
          : status === "reconnecting"
            ? "The connection dropped; reconnecting. Nothing you do is lost."
            : "";
  }
}
