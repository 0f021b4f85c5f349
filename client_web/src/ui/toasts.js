// Notices to the person: information fades, errors and urgent messages stay
// until dismissed. Errors are announced (role=alert).

import { h } from "../dom.js";

const MAX = 4;

export class Toasts {
  constructor() {
    this.el = h("div", { class: "toasts", "aria-live": "polite" });
  }

  add(kind, title, body, actions = [], ttl = 0) {
    const close = () => node.remove();
    const node = h(
      "div",
      { class: ["toast", kind], role: kind === "info" ? "status" : "alert" },
      h("div", { class: "toast-title" }, title),
      body ? h("div", { class: "toast-body" }, body) : null,
      h(
        "div",
        { class: "toast-actions" },
        actions.map((a) =>
          h(
            "button",
            {
              type: "button",
              on: {
                click: () => {
                  close();
                  a.run();
                },
              },
            },
            a.label,
          ),
        ),
        h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", on: { click: close } }, "Dismiss"),
      ),
    );
    this.el.append(node);
    while (this.el.children.length > MAX) this.el.firstElementChild.remove();
    if (ttl) setTimeout(close, ttl);
    return node;
  }

  info(title, body) {
    return this.add("info", title, body, [], 6000);
  }

  error(title, action) {
    return this.add("error", title, action, [], 30000);
  }

  urgent(title, text, actions) {
    return this.add("urgent", title, text, actions, 0);
  }
}
