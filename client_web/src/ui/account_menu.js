// The account menu at the far end of the top bar: who is signed in,
// shortcuts and "Sign out". Sign out is never a button next to "Share
// position" (a thumb aiming for one hit the other on a phone); it takes
// opening the menu first.

import { h } from "../dom.js";

export function accountMenu(app, toggleHelp) {
  const menu = h("details", { class: "account-menu" });
  const close = () => menu.removeAttribute("open");
  // Named when opened: the organisations' names arrive after the shell is built
  // (built then, the menu showed "harbour-shelter").
  const org = h("span", { class: "muted account-org" }, app.orgName(app.me.org));
  menu.addEventListener("toggle", () => {
    if (menu.open) org.textContent = app.orgName(app.me.org);
  });
  menu.append(
    h("summary", { class: "account-toggle", "aria-label": `Account: ${app.me.name}` }, "☰", h("span", { class: "desk-only" }, " Menu")),
    h(
      "div",
      { class: "account-items" },
      h("p", { class: "account-who" }, app.me.name, h("br"), org),
      app.notifier.menuButton,
      h(
        "button",
        { type: "button", class: "desk-only", title: "Keyboard shortcuts (?)", on: { click: () => (close(), toggleHelp()) } },
        "Shortcuts",
      ),
      h("button", { type: "button", class: "sign-out danger", on: { click: () => (close(), app.signOut()) } }, "Sign out"),
    ),
  );
  // A tap anywhere else closes it.
  document.addEventListener("pointerdown", (ev) => {
    if (menu.open && !menu.contains(ev.target)) close();
  });
  return menu;
}
