// Keyboard shortcuts for the desk. Single keys act only when no text field
// has focus; Escape always leaves the field or closes what is open.

import { h } from "../dom.js";

export const SHORTCUTS = [
  ["/", "Search incidents"],
  ["j / k", "Next / previous incident in the list"],
  ["Enter or o", "Open the selected incident"],
  ["1 … 9", "Go to open incident 1 … 9"],
  ["c", "Write in the channel of the current incident"],
  ["r", "Reply to the latest message"],
  ["u", "Mark the message being written urgent (on/off)"],
  ["a", "Acknowledge the oldest urgent message waiting for you"],
  ["t", "New task"],
  ["n", "New incident"],
  ["e / s", "My status: en route / on scene"],
  ["x", "Close the current incident pane"],
  ["p", "Replay the current incident"],
  ["?", "Show or hide these shortcuts"],
  ["Esc", "Leave the field, close the dialog"],
  ["Enter (in a message)", "Send; Shift+Enter for a new line"],
];

export class ShortcutHelp {
  constructor() {
    this.el = h(
      "dialog",
      { class: "help", "aria-label": "Keyboard shortcuts" },
      h("h2", {}, "Keyboard shortcuts"),
      h(
        "dl",
        {},
        SHORTCUTS.map(([k, what]) => [h("dt", {}, h("kbd", {}, k)), h("dd", {}, what)]),
      ),
      h("form", { method: "dialog" }, h("button", { class: "primary" }, "Close")),
    );
  }

  toggle() {
    if (this.el.open) this.el.close();
    else this.el.showModal();
  }
}

function typing(target) {
  const tag = target?.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target?.isContentEditable;
}

export function installShortcuts(app) {
  document.addEventListener("keydown", (ev) => {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Escape") {
      if (typing(ev.target)) ev.target.blur();
      return;
    }
    if (typing(ev.target) || document.querySelector("dialog[open]")) return;
    const pane = app.active ? app.panes.get(app.active) : null;
    const handled = (() => {
      switch (ev.key) {
        case "/":
          app.listView.focusSearch();
          return true;
        case "j":
          app.listView.move(1);
          return true;
        case "k":
          app.listView.move(-1);
          return true;
        case "o":
          return app.listView.openSelected();
        case "Enter":
          // buttons handle Enter themselves; only a bare Enter opens the selection
          return ev.target === document.body && app.listView.openSelected();
        case "?":
          app.help.toggle();
          return true;
        case "n":
          app.newIncident();
          return true;
        case "c":
          pane?.reveal("channel");
          pane?.channel.focusComposer();
          return !!pane;
        case "r":
          pane?.reveal("channel");
          pane?.channel.replyToLatest();
          return !!pane;
        case "u":
          pane?.reveal("channel");
          pane?.channel.toggleUrgent();
          return !!pane;
        case "a":
          pane?.channel.acknowledgeOldest();
          return !!pane;
        case "t":
          pane?.reveal("tasks");
          pane?.tasks.openNewTask();
          return !!pane;
        case "e":
          pane?.setMyStatus("en_route");
          return !!pane;
        case "s":
          pane?.setMyStatus("on_scene");
          return !!pane;
        case "x":
          if (pane) app.closePane(pane.id);
          return !!pane;
        case "p":
          if (pane) app.openReplay(pane.id);
          return !!pane;
        default:
          if (/^[1-9]$/.test(ev.key)) {
            const id = app.paneOrder[Number(ev.key) - 1];
            if (id) app.openIncident(id);
            return !!id;
          }
          return false;
      }
    })();
    if (handled) ev.preventDefault();
  });
}
