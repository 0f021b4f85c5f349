// The phone layout's behaviour (the look is styles.css, body[data-layout=phone]):
//
// - Compact while reading back or typing: scrolling the channel up, or
//   focusing the composer, collapses the incident header, the status buttons
//   and the composer's options (body.compact), so the messages get the room;
//   scrolling back to the newest message, or leaving the composer, brings
//   them back. Collapsing keeps the channel pinned to its newest message.
//   The composer's options show while it holds the focus. Neither changes
//   until a tap has ended (.keep-open holds the options): changing at the
//   press moved the tapped button (Acknowledge) away between press and
//   release, and the tap was lost.
// - Back: opening an incident on a phone is a history entry, so the phone's
//   Back button (popstate) returns to the list instead of leaving the app,
//   and lands on the list, not in the search box (which would open the
//   keyboard).

const TYPING = ".composer-text, .edit-text";
/** How far above the newest message a scroll collapses the chrome (px). */
const AWAY_PX = 80;

export class PhoneLayout {
  constructor(app) {
    this.app = app;
    this.scrolledUp = false;
    this.lastTop = new WeakMap();
    this.pressed = false;
  }

  install() {
    document.addEventListener("scroll", (ev) => this.onScroll(ev.target), { capture: true, passive: true });
    document.addEventListener("focusin", () => this.pressed || this.apply());
    document.addEventListener("focusout", () => setTimeout(() => this.pressed || this.apply(), 0));
    document.addEventListener("pointerdown", () => this.press(), { capture: true, passive: true });
    const release = () => {
      this.pressed = false;
      setTimeout(() => {
        // After the click this release completes.
        for (const c of document.querySelectorAll(".composer.keep-open")) c.classList.remove("keep-open");
        this.apply();
      }, 0);
    };
    document.addEventListener("pointerup", release, { capture: true, passive: true });
    document.addEventListener("pointercancel", release, { capture: true, passive: true });
    window.addEventListener("popstate", () => this.onBack());
  }

  /** A tap begins: what the focus would change waits until it ends. */
  press() {
    this.pressed = true;
    for (const c of document.querySelectorAll(".composer:focus-within")) c.classList.add("keep-open");
  }

  get phone() {
    return this.app.layout === "phone";
  }

  onScroll(el) {
    if (!(el instanceof Element) || !el.classList.contains("channel-scroll")) return;
    const last = this.lastTop.get(el) ?? el.scrollTop;
    this.lastTop.set(el, el.scrollTop);
    const away = el.scrollHeight - el.scrollTop - el.clientHeight;
    // Only a scroll up collapses and only reaching the newest message expands:
    // the channel growing or shrinking as the chrome moves never flips it back.
    if (el.scrollTop < last && away > AWAY_PX) this.scrolledUp = true;
    else if (el.scrollTop > last && away < 4) this.scrolledUp = false;
    else return;
    this.apply();
  }

  typing() {
    return !!document.activeElement?.matches?.(TYPING);
  }

  /** Set body.compact; a channel at its newest message stays there. */
  apply() {
    const compact = this.phone && (this.scrolledUp || this.typing());
    const body = document.body;
    if (body.classList.contains("compact") === compact) return;
    const pinned = [...document.querySelectorAll(".channel-scroll")].filter(
      (el) => el.scrollHeight - el.scrollTop - el.clientHeight < 60,
    );
    body.classList.toggle("compact", compact);
    for (const el of pinned) el.scrollTop = el.scrollHeight;
  }

  /** An incident opened on a phone becomes a history entry (Back returns to the list). */
  historyFor(url) {
    const ws = this.app.workspace;
    if (location.hash === url) return;
    if (this.phone && ws.phoneView !== "incident") history.pushState({ liaison: "pane" }, "", url);
    else history.replaceState(history.state, "", url);
  }

  /** The in-app back button: the same as the phone's, when there is an entry to go back to. */
  back() {
    if (history.state?.liaison === "pane") history.back();
    else this.app.workspace.showList();
  }

  onBack() {
    const ws = this.app.workspace;
    if (this.phone && ws.phoneView === "incident" && !ws.linkedIncident()) ws.showList();
  }
}
