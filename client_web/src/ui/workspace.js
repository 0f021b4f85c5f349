// What the person has open: the incident panes (several on a desk, one on a
// phone), the active one, the replay, the list's filters, and the layout
// saved with them; and which incident a phone opens at start.

import { IncidentPane } from "./pane.js";
import { counts } from "../projection.js";

/** How long a phone waits for the incident its person works on before showing the list. */
const AUTO_OPEN_MS = 15_000;

export class Workspace {
  constructor(app) {
    this.app = app;
    this.panes = new Map(); // id -> IncidentPane
    this.paneOrder = [];
    this.active = null;
    this.phoneView = "list";
    this.replay = null;
    this.autoOpen = false;
    this.filters = { q: "", status: "open", priority: "", mine: false };
  }

  restore(saved) {
    if (saved?.filters) this.filters = { ...this.filters, ...saved.filters };
  }

  persist() {
    const app = this.app;
    if (!app.me) return;
    const ui = { filters: this.filters, panes: this.paneOrder, active: this.active };
    app.save("layout", () => app.store.set(app.key("ui"), ui));
  }

  openIncident(id, { focus = true } = {}) {
    const app = this.app;
    this.autoOpen = false;
    app.incidents.ensureLoaded(id);
    if (!this.panes.has(id)) {
      this.panes.set(id, new IncidentPane(app, id));
      this.paneOrder.push(id);
    } else {
      this.paneOrder = [...this.paneOrder.filter((p) => p !== id), id];
    }
    this.active = id;
    app.phoneLayout.historyFor(`#/incident/${encodeURIComponent(id)}`);
    this.phoneView = "incident";
    this.replay?.close();
    this.persist();
    app.applyLayout();
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
    this.persist();
    this.app.applyLayout();
  }

  backToList() {
    this.app.phoneLayout.back();
  }

  /** The list again (phone); focus on the list, never in the search box (the keyboard would open). */
  showList() {
    this.phoneView = "list";
    if (location.hash) history.replaceState(history.state?.liaison ? null : history.state, "", "#");
    this.app.applyLayout();
    this.app.listView.focus();
  }

  async openReplay(id) {
    const { Replay } = await import("./replay.js");
    this.replay?.close();
    this.replay = new Replay(this.app, id, () => {
      this.replay = null;
      this.app.applyLayout();
    });
    this.app.applyLayout();
  }

  /** A link to an incident: /#/incident/<id>. */
  linkedIncident() {
    const m = /^#\/incident\/([^/?#]+)$/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : null;
  }

  /** A desk reopens its panes; a phone opens the incident the person is working. */
  pickStartView() {
    const app = this.app;
    const linked = this.linkedIncident();
    if (linked) {
      this.openIncident(linked, { focus: false });
      return;
    }
    const savedUi = app.incidents.savedUi;
    const { summaries, states } = app.incidents;
    const saved = (savedUi?.panes || []).filter((id) => summaries.has(id) || states.has(id));
    if (app.layout === "desk") {
      for (const id of saved) this.openIncident(id, { focus: false });
      if (savedUi?.active && this.panes.has(savedUi.active)) this.active = savedUi.active;
      app.applyLayout();
      return;
    }
    const current = this.currentIncident(saved);
    if (current) this.openIncident(current, { focus: false });
    else {
      // Nothing known yet: open the incident the person works on once it has loaded.
      this.autoOpen = true;
      setTimeout(() => (this.autoOpen = false), AUTO_OPEN_MS);
      app.applyLayout();
    }
  }

  maybeAutoOpen() {
    if (!this.autoOpen || this.app.layout !== "phone" || this.phoneView !== "list") return;
    const id = this.currentIncident();
    if (id) {
      this.autoOpen = false;
      this.openIncident(id, { focus: false });
    }
  }

  /** The last open pane, else the open incident I am engaged in (en route, on scene, a task). */
  currentIncident(saved = []) {
    const { incidents, me } = this.app;
    const open = (id) => incidents.info(id)?.status !== "closed";
    const last = saved[saved.length - 1];
    if (last && open(last)) return last;
    let best = null;
    for (const [id, state] of incidents.states) {
      if (!open(id)) continue;
      const mine = state.responders.get(me.id);
      const engaged =
        (mine && (mine.status === "en_route" || mine.status === "on_scene")) || counts(state, me).myTasks > 0;
      if (engaged && (!best || state.updated > best.updated)) best = state;
    }
    return best?.id || null;
  }
}
