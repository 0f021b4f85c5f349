// Notifications outside the page (SPEC 26): on the desk the Notification API
// and a short sound while the tab is hidden or another incident is open; and
// Web Push through the service worker, for when the app is in the background
// or closed. Nothing is asked on load (a permission prompt nobody asked for
// is refused by habit): the person opts in with the top bar's button, and
// what cannot work here (no Notification API, no push service, a refusal)
// is said on screen, never only in the console.

import { h } from "../dom.js";

/** Two short tones (Hz, start s): audible over a radio, no asset to load. */
const TONES = [
  [880, 0],
  [660, 0.18],
];

export function pushSupported(nav = navigator, win = window) {
  return "serviceWorker" in nav && "PushManager" in win && "Notification" in win;
}

/** The Push API's applicationServerKey from the server's base64url key. */
export function keyBytes(b64) {
  const raw = atob(b64.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function sameKey(buffer, b64) {
  if (!buffer) return false;
  const a = new Uint8Array(buffer);
  const b = keyBytes(b64);
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export class Notifier {
  constructor(app) {
    this.app = app;
    this.audio = null;
    const title = "Notifications and a sound when something needs you, also while Liaison is closed";
    const click = () => this.enable();
    // The desk's top bar holds it; the phone's is full (Online, Share
    // position, Capacity, the menu), so there it is an item of the account menu.
    this.button = h("button", { type: "button", class: "notify-toggle desk-only", title, on: { click } }, "");
    this.menuButton = h("button", { type: "button", class: "notify-toggle phone-only", title, on: { click } }, "");
    this.label();
  }

  get permitted() {
    return "Notification" in window && Notification.permission === "granted";
  }

  label() {
    const state = !("Notification" in window) ? "unavailable" : Notification.permission;
    const on = state === "granted" ? "on" : "off";
    this.button.dataset.state = this.menuButton.dataset.state = state;
    this.button.replaceChildren(`Notifications: ${on}`);
    this.menuButton.replaceChildren(`Alerts: ${on}`);
  }

  /** The button: permission (a user gesture), the sound unlocked, then push. */
  async enable() {
    const toasts = this.app.toasts;
    if (!("Notification" in window)) {
      toasts.error("This browser cannot show notifications.", "Alerts show inside Liaison only, while it is open.");
      return;
    }
    const permission = await Notification.requestPermission();
    this.label();
    if (permission !== "granted") {
      toasts.error("Notifications are blocked for this site.", "Allow them in the browser's site settings, then try again.");
      return;
    }
    this.unlockSound();
    try {
      await this.subscribe();
      toasts.info("Notifications on, also while Liaison is closed.");
    } catch (err) {
      console.warn("push subscription failed", err);
      toasts.error(
        "Notifications work only while Liaison is open.",
        `Push could not be set up here: ${err?.message || err}`,
      );
    }
  }

  async subscribe() {
    if (!pushSupported()) throw new Error("this browser has no Web Push");
    const reg = await navigator.serviceWorker.getRegistration("/");
    if (!reg) throw new Error("the offline worker is not installed (reload the page)");
    const { public_key: key } = await this.app.api.request("GET", "/api/v1/push/key");
    let sub = await reg.pushManager.getSubscription();
    if (sub && !sameKey(sub.options?.applicationServerKey, key)) {
      await sub.unsubscribe(); // the server's key was rotated
      sub = null;
    }
    sub ||= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
    await this.app.api.request("POST", "/api/v1/push/subscriptions", sub.toJSON());
  }

  /** Signing out: this browser gets no more pushes for this person. */
  async forget() {
    try {
      const reg = await navigator.serviceWorker?.getRegistration("/");
      const sub = await reg?.pushManager?.getSubscription();
      if (!sub) return;
      await this.app.api
        .request("DELETE", "/api/v1/push/subscriptions?endpoint=" + encodeURIComponent(sub.endpoint))
        .catch((err) => console.warn("push unsubscribe refused", err));
      await sub.unsubscribe();
    } catch (err) {
      console.warn("push unsubscribe failed", err);
    }
  }

  /** Something needs the person and the page is hidden or elsewhere: sound, notification. */
  notify(alert) {
    this.beep();
    if (!this.permitted) return;
    try {
      const n = new Notification(alert.title, { body: alert.body || "", tag: alert.key });
      n.onclick = () => {
        window.focus();
        this.app.openIncident(alert.incident);
        n.close();
      };
    } catch (err) {
      console.warn("notification not shown", err); // Android Chrome: only the worker may
    }
  }

  unlockSound() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (Ctx && !this.audio) this.audio = new Ctx();
    this.audio?.resume?.();
  }

  beep() {
    const ctx = this.audio;
    if (!ctx || ctx.state !== "running") return; // never unlocked by a gesture: silent
    for (const [hz, at] of TONES) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      const t = ctx.currentTime + at;
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.25, t + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.16);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t);
      osc.stop(t + 0.17);
    }
    this.beeps = (this.beeps || 0) + 1; // for tests and diagnostics
  }
}
