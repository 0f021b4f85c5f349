// The screen around the incidents: the top bar (connection and saving
// indicator, who is signed in), the list, the pane grid and the replay slot;
// the desk or phone layout of them; and the render loop (one frame at most
// per animation frame, whatever changed).

import { h, setChildren, setText } from "../dom.js";
import { IncidentList } from "./list.js";
import { installShortcuts, ShortcutHelp } from "./shortcuts.js";
import { KpiView } from "./kpis.js";
import { accountMenu } from "./account_menu.js";
import { CapacityView } from "./capacity.js";

/** Roles the server serves KPIs to (SPEC 18.2). */
const KPI_ROLES = new Set(["supervisor", "admin"]);

/** How many panes fit side by side: one per this many pixels, at most three. */
const PANE_WIDTH_PX = 540;

export class Shell {
  constructor(app) {
    this.app = app;
    this.main = null;
    this.dirty = true;
    this.frame = 0;
    this.interactive = false;
  }

  build() {
    const app = this.app;
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
        on: { click: () => app.geo.toggle() },
      },
      "Share position: off",
    );
    const userChip = h(
      "span",
      { class: "user-chip" },
      h("span", { class: "user-name" }, app.me.name),
      h(
        "span",
        { class: ["badge", "org", "kind-" + app.orgKind(app.me.org)], "data-org": app.me.org },
        app.orgName(app.me.org),
      ),
    );
    this.userOrgBadge = userChip.lastChild;
    const menu = h(
      "div",
      { class: "header-actions" },
      this.geoButton,
      app.notifier.button,
      KPI_ROLES.has(app.me.role)
        ? h("button", { type: "button", class: "open-kpis", on: { click: () => this.openKpis() } }, "KPIs")
        : null,
      h("button", { type: "button", class: "open-capacity", on: { click: () => this.openCapacity() } }, "Capacity"),
      accountMenu(app, () => this.help.toggle()),
    );
    this.header = h("header", { class: "topbar" }, h("span", { class: "brand" }, "Liaison"), this.connEl, userChip, menu);
    this.listView = new IncidentList(app);
    this.workspace = h("section", { class: "workspace", "aria-label": "Open incidents" });
    this.tabs = h("nav", { class: "pane-tabs", "aria-label": "Open incidents" });
    this.paneGrid = h("div", { class: "pane-grid" });
    this.emptyWorkspace = h(
      "div",
      { class: "workspace-empty" },
      h("p", {}, "Open an incident from the list."),
      h("p", { class: "hint desk-only" }, "Keys: j / k to move, Enter to open, / to search, ? for every shortcut."),
    );
    this.workspace.append(this.tabs, this.paneGrid, this.emptyWorkspace);
    this.replaySlot = h("section", { class: "replay-slot", hidden: true });
    this.main = h("main", { class: "main" }, this.listView.el, this.workspace, this.replaySlot);
    this.help = new ShortcutHelp();
    setChildren(app.root, this.header, this.main, app.toasts.el, this.help.el);
    installShortcuts(app);
    this.applyLayout();
  }

  openKpis() {
    if (this.kpis) return;
    this.kpis = new KpiView(this.app, () => (this.kpis = null));
    this.app.root.append(this.kpis.el);
    requestAnimationFrame(() => this.kpis?.el.querySelector("h2").focus());
  }

  openCapacity() {
    if (this.capacity) return;
    this.capacity = new CapacityView(this.app, () => (this.capacity = null));
    this.app.root.append(this.capacity.el);
    requestAnimationFrame(() => this.capacity?.el.querySelector("h2").focus());
  }

  applyLayout() {
    if (!this.main) return;
    const { layout, workspace: ws } = this.app;
    document.body.dataset.layout = layout;
    const replaying = !!ws.replay;
    this.replaySlot.hidden = !replaying;
    if (replaying && ws.replay.el.parentNode !== this.replaySlot) setChildren(this.replaySlot, ws.replay.el);
    if (layout === "phone") {
      const showPane = !replaying && ws.phoneView === "incident" && ws.active && ws.panes.has(ws.active);
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
    const ws = this.app.workspace;
    if (this.app.layout === "phone") return ws.active ? [ws.active] : [];
    const width = this.workspace.clientWidth || window.innerWidth - 320;
    const slots = Math.max(1, Math.min(3, Math.floor(width / PANE_WIDTH_PX)));
    // the active pane and the most recently used others
    const recent = [...ws.paneOrder].reverse().filter((id) => id !== ws.active);
    return [ws.active, ...recent].filter(Boolean).slice(0, slots);
  }

  layoutPanes() {
    const app = this.app;
    const ws = app.workspace;
    const visible = this.visiblePaneIds();
    const ordered = ws.paneOrder.filter((id) => visible.includes(id));
    setChildren(this.paneGrid, ...ordered.map((id) => ws.panes.get(id).el));
    this.paneGrid.style.setProperty("--panes", String(Math.max(1, ordered.length)));
    for (const [id, pane] of ws.panes) pane.setVisible(visible.includes(id), id === ws.active);
    this.emptyWorkspace.hidden = ws.panes.size > 0;
    this.tabs.hidden = app.layout === "phone" || ws.panes.size < 2;
    setChildren(
      this.tabs,
      ...ws.paneOrder.map((id, i) => {
        const state = app.info(id);
        return h(
          "span",
          { class: ["pane-tab", id === ws.active && "active", visible.includes(id) && "shown"] },
          h(
            "button",
            { type: "button", class: "tab-open", on: { click: () => app.openIncident(id) } },
            `${i + 1}. ${state?.title || "Loading…"}`,
          ),
          h(
            "button",
            {
              type: "button",
              class: "tab-close",
              "aria-label": `Close ${state?.title || "incident"}`,
              on: { click: () => app.closePane(id) },
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
    const app = this.app;
    this.renderConnection();
    setText(this.userOrgBadge, app.orgName(app.me.org));
    this.userOrgBadge.className = `badge org kind-${app.orgKind(app.me.org)}`;
    this.listView.update();
    for (const pane of app.panes.values()) pane.update();
    app.replay?.update();
    this.capacity?.update();
    app.geo.render();
    if (!this.interactive) {
      // the shell is on screen with its handlers attached
      this.interactive = true;
      performance.mark("liaison-interactive");
    }
  }

  renderConnection() {
    const { sync, persistence } = this.app;
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
    const saved = persistence.state;
    this.connEl.dataset.state = status;
    this.connEl.dataset.queued = String(queued);
    this.connEl.dataset.saved = saved;
    const parts = [text];
    if (failed) parts.push(`${failed} not sent`);
    if (saved === "failed") parts.push("not saved on this device");
    setText(this.connEl, parts.join(" · "));
    this.connEl.title =
      saved === "failed"
        ? `${persistence.describe()} What you do is still sent while this page stays open; a reload would lose what is not sent yet.`
        : status === "offline"
          ? "No network. What you do is kept on this device and sent when the connection is back."
          : status === "reconnecting"
            ? "The connection dropped; reconnecting. Nothing you do is lost."
            : "";
  }
}
