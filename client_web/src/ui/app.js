// The application: it composes the parts and wires them together. Each part
// has one job:
//
//   session.js    who is signed in (token, user, the stored session)
//   incidents.js  the incidents held: list, states, follows, their saving
//   sync.js       the live channel: follows, events, the outbox
//   workspace.js  what is open: panes, replay, filters, the start view
//   shell.js      the screen around them, the layout and the render loop
//   alerts.js     urgent messages
//
// The UI components (list, pane, channel, tasks...) and the browser tests
// (`window.__liaison`) talk to this object; it delegates to the parts.

import { Api, ApiError } from "../api.js";
import { Sync } from "../sync.js";
import { Persistence } from "../persist.js";
import { Session } from "../session.js";
import { Incidents, MAX_FOLLOWED } from "../incidents.js";
import { CommandInvalid } from "../protocol.js";
import { explain } from "../errors.js";
import { Toasts } from "./toasts.js";
import { NewIncidentDialog } from "./forms.js";
import { Geo } from "./geo.js";
import { showLogin } from "./login.js";
import { Alerts } from "./alerts.js";
import { Notifier } from "./notify.js";
import { Receipts } from "./safety.js";
import { Workspace } from "./workspace.js";
import { Shell } from "./shell.js";
import { Contacts } from "../contacts.js";
import { describeRefusal } from "../refusal.js";
import { PhoneLayout } from "./phone_layout.js";
import { clock } from "../format.js";

const DESK_QUERY = "(min-width: 900px)";

export class App {
  constructor(root, { store, io, tileUrl }) {
    this.root = root;
    this.store = store;
    this.io = io;
    this.tileUrl = tileUrl;
    this.api = new Api("", () => this.session.token);
    this.session = new Session({ store, api: this.api, save: (what, write) => this.save(what, write) });
    this.sync = null;
    this.layout = matchMedia(DESK_QUERY).matches ? "desk" : "phone";
    this.toasts = new Toasts();
    this.workspace = new Workspace(this);
    this.shell = new Shell(this);
    this.phoneLayout = new PhoneLayout(this);
    this.alerts = new Alerts(this);
    this.notifier = new Notifier(this);
    this.geo = new Geo(this);
    this.receipts = new Receipts(this);
    this.contacts = new Contacts(this.api, () => {
      for (const pane of this.panes.values()) pane.markDirty();
      this.schedule();
    });
    this.openOnAck = new Map(); // client id of an incident.create -> its "opening" toast
    this.persistence = new Persistence({ onChange: () => this.schedule() });
    if (store.memory) this.persistence.fail("everything", store.openError || "IndexedDB unavailable");
    this.incidents = new Incidents({
      store,
      api: this.api,
      save: (what, write) => this.save(what, write),
      key: (name) => this.key(name),
      signedIn: () => !!this.me,
      followLimits: () => ({ max: MAX_FOLLOWED[this.layout], open: this.paneOrder }),
      changed: () => this.schedule(),
      forgot: (id) => this.closePane(id),
      saveUi: () => this.persistUi(),
      failed: (err) => this.handleApiError(err, true),
    });
  }

  // -------------------------------------- what the components and tests read

  get me() {
    return this.session.me;
  }
  get coordinator() {
    return this.session.coordinator;
  }
  get states() {
    return this.incidents.states;
  }
  get summaries() {
    return this.incidents.summaries;
  }
  get orgs() {
    return this.incidents.orgs;
  }
  get people() {
    return this.incidents.people;
  }
  get read() {
    return this.incidents.read;
  }
  get filters() {
    return this.workspace.filters;
  }
  get panes() {
    return this.workspace.panes;
  }
  get paneOrder() {
    return this.workspace.paneOrder;
  }
  get active() {
    return this.workspace.active;
  }
  get replay() {
    return this.workspace.replay;
  }
  get listView() {
    return this.shell.listView;
  }
  get help() {
    return this.shell.help;
  }
  get geoButton() {
    return this.shell.geoButton;
  }

  // ------------------------------------------------------------------- boot

  async boot() {
    matchMedia(DESK_QUERY).addEventListener("change", (e) => {
      this.layout = e.matches ? "desk" : "phone";
      this.applyLayout();
    });
    this.phoneLayout.install();
    window.addEventListener("online", () => this.sync?.goOnline());
    window.addEventListener("hashchange", () => {
      const id = this.workspace.linkedIncident();
      if (id && this.me && id !== this.active) this.openIncident(id);
    });
    window.addEventListener("offline", () => this.sync?.goOffline());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        this.refreshList();
        this.schedule();
        this.checkSession();
      } else {
        // A phone may kill a page in the background without another event.
        this.flushPersistence();
      }
    });
    window.addEventListener("pagehide", () => this.flushPersistence());
    for (const kind of ["pointerdown", "keydown", "touchstart"]) {
      window.addEventListener(kind, () => this.session.touch(), { passive: true, capture: true });
    }
    const { session, usable, refreshable } = await this.session.stored();
    if (usable) return this.startSession(session);
    if (refreshable) {
      this.session.begin(session);
      try {
        return await this.startSession(await this.session.refresh());
      } catch (err) {
        console.warn("the stored session could not be refreshed", err);
      }
    }
    this.showLogin(session?.user ? "Your session has ended. Sign in again." : null, session?.user);
  }

  // ---------------------------------------------------------- session clock

  /** Refresh, warn or sign out as the session's plan says; then sleep until the next step. */
  checkSession() {
    clearTimeout(this.sessionTimer);
    if (!this.me || !this.sync) return;
    const plan = this.session.plan();
    if (plan.idle) return this.idleEnded();
    this.warnIdle(plan.warn);
    if (plan.refresh) {
      this.session.refresh().then(
        () => this.checkSession(),
        (err) => {
          if (err instanceof ApiError && err.code === "unauthenticated") this.sessionEnded();
          else console.warn("silent refresh failed; retrying", err); // offline: the plan retries
        },
      );
    }
    // Timers of a background tab are throttled: never sleep longer than 30 s,
    // and look again whenever the tab becomes visible.
    this.sessionTimer = setTimeout(() => this.checkSession(), Math.min(30_000, Math.max(250, plan.at - Date.now())));
  }

  /** The "session ends in N minutes" toast, shown while the end is near, gone on activity. */
  warnIdle(minutes) {
    if (minutes === this.warnedMinutes) return;
    this.idleToast?.remove();
    this.idleToast = null;
    this.warnedMinutes = minutes;
    if (minutes === null) return;
    this.idleToast = this.toasts.add(
      "warning",
      `Your session ends in ${minutes} minute${minutes === 1 ? "" : "s"}`,
      "You have been inactive. Anything queued is kept if it ends.",
      [{ label: "Stay signed in", run: () => this.stayActive() }],
    );
    this.idleToast.dataset.sessionWarning = String(minutes);
  }

  stayActive() {
    this.session.touch();
    this.checkSession();
  }

  async idleEnded() {
    const minutes = Math.round(this.session.idleMs / 60_000);
    await this.session.logout();
    this.sessionEnded(`You were signed out after ${minutes} minutes without activity. Queued changes are kept and sent after you sign in.`);
  }

  showLogin(message, lastUser) {
    showLogin(this.root, {
      message,
      lastUser,
      submit: async (username, password) => {
        const session = await this.session.login(username, password);
        if (this.me) {
          // Signed in again after a session ended: start clean from the
          // stored session (the outbox waits in IndexedDB).
          location.reload();
          return;
        }
        await this.startSession(session);
      },
    });
  }

  async startSession(session) {
    this.session.begin(session);
    this.session.touch();
    document.body.dataset.screen = "app";
    await this.incidents.restore();
    this.workspace.restore(this.incidents.savedUi);
    this.shell.build();
    this.sync = new Sync({
      io: this.io,
      url: location.origin,
      store: this.store,
      getToken: () => this.session.token,
      user: this.me,
      online: () => navigator.onLine,
      persist: (what, write) => this.save(what, write),
    });
    this.wireSync();
    this.incidents.attach(this.sync);
    await this.sync.start();
    this.workspace.pickStartView();
    this.schedule();
    this.refreshList();
    this.incidents.loadDirectory();
    window.addEventListener("pointerdown", () => this.warnedMinutes && this.checkSession(), { passive: true });
    this.checkSession();
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
    await this.notifier.forget();
    this.teardown();
    await this.flushPersistence();
    await this.session.logout();
    if (!(await this.session.erase())) {
      this.toasts.error(
        "This device could not erase its copy of the incidents.",
        "Close the browser, or clear this site's data in its settings.",
      );
      return;
    }
    location.reload();
  }

  teardown() {
    clearTimeout(this.sessionTimer);
    this.warnIdle(null);
    this.geo.stop();
    this.sync?.stop();
    this.sync = null;
    this.incidents.sync = null;
  }

  sessionEnded(message = "Your session has ended. Sign in again — queued changes are kept and sent afterwards.") {
    const user = this.me;
    this.teardown();
    this.session.forgetStored();
    this.showLogin(message, user);
  }

  // ------------------------------------------------------------ persistence

  key(name) {
    return this.session.key(name);
  }

  /** Write through the persistence tracker: a failure is logged and shown, never lost. */
  save(what, write) {
    return this.persistence.track(what, write);
  }

  /** Write everything now and resolve once it is on disk (page hide, sign-out, tests). */
  async flushPersistence() {
    this.incidents.saveStates.flush();
    await this.persistence.retryFailed();
    return this.persistence.idle();
  }

  persistUi() {
    this.workspace.persist();
  }

  // -------------------------------------------------------------- live sync

  wireSync() {
    const sync = this.sync;
    sync.on("status", () => this.schedule());
    sync.on("outbox", () => this.schedule());
    sync.on("welcome", () => {
      if (!performance.getEntriesByName("liaison-online").length) performance.mark("liaison-online");
      this.refreshList();
    });
    sync.on("events", (id, envs) => this.onEvents(id, envs));
    // The list is kept current by the feed (SPEC 22), not polled.
    sync.on("feed", (entries) => {
      this.incidents.applyFeed(entries);
      this.alerts.onFeed(entries);
    });
    sync.on("feedResync", () => this.refreshList());
    sync.on("resync", (id, epoch, why) => this.incidents.resync(id, epoch, why));
    sync.on("gone", (id) => {
      const title = this.summaries.get(id)?.title || "An incident";
      this.toasts.info(`${title} is no longer available to your organisation.`);
      this.incidents.forget(id);
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
    const held = this.incidents.fold(id, envs, (state, env, live) => {
      this.panes.get(id)?.onEvent(env);
      this.alerts.onEvent(state, env, live);
    });
    if (!held) return;
    const state = this.states.get(id);
    if (state) for (const env of envs) this.receipts.onEvent(state, env);
    this.workspace.maybeAutoOpen();
    this.schedule();
  }

  onAcked(item, ack) {
    if (item.cmd.type === "incident.create") {
      const id = ack.incident;
      this.incidents.ensureLoaded(id).then(() => {
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
    if (item.cmd.type === "receipt.mark") {
      // A receipt that cannot be stored (the item was withdrawn meanwhile) is no news.
      this.sync.drop(item.id);
      return;
    }
    const why = this.refusal(item.cmd, error);
    this.toasts.error(why.title, why.action);
    // A message that was refused stays (marked "not sent") so its text is not
    // lost; other actions are dropped: the screen shows the current state.
    if (item.cmd.type !== "message.post") this.sync.drop(item.id);
    if (error.code === "unauthenticated") this.sessionEnded();
    this.schedule();
  }

  /** A refusal in words: who did what first, from this device's log, else the code. */
  refusal(cmd, error) {
    const state = this.states.get(cmd.incident);
    return describeRefusal(state, cmd, error, {
      name: (user) => this.personName(state, user),
      clock,
      me: this.me?.id,
    });
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
    if (cmd.type === "message.ack") this.alerts.clear(cmd.incident, cmd.message);
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

  refreshList() {
    return this.incidents.refreshList();
  }

  ensureLoaded(id) {
    return this.incidents.ensureLoaded(id);
  }

  markRead(id) {
    if (!this.incidents.markRead(id)) return;
    this.listView?.markDirty();
    this.schedule();
  }

  newIncident() {
    if (!this.coordinator) return;
    new NewIncidentDialog(this).open();
  }

  // --------------------------------------------------------------- lookups

  info(id) {
    return this.incidents.info(id);
  }
  orgName(id) {
    return this.incidents.orgName(id);
  }
  orgKind(id) {
    return this.incidents.orgKind(id);
  }
  personName(state, user) {
    return this.incidents.personName(state, user);
  }
  counts(id) {
    return this.incidents.counts(id, this.me);
  }

  // ------------------------------------------------------ workspace, shell

  openIncident(id, options) {
    this.alerts.seen(id);
    this.workspace.openIncident(id, options);
  }
  closePane(id) {
    this.workspace.closePane(id);
  }
  backToList() {
    this.workspace.backToList();
  }
  openReplay(id) {
    return this.workspace.openReplay(id);
  }
  applyLayout() {
    this.shell.applyLayout();
  }
  schedule() {
    this.shell.schedule();
  }
}
