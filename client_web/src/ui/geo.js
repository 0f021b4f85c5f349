// Position sharing: the browser's geolocation, only while the person has
// turned it on. Reports go to the incidents where they are en route or on
// scene (else the incident on screen), at most every 15 s and only when they
// moved, so the permanent log does not fill with noise.

import { setText } from "../dom.js";
import { distanceM } from "../format.js";

const MIN_INTERVAL_MS = 15_000;
const MIN_MOVE_M = 20;
const HEARTBEAT_MS = 120_000;

export class Geo {
  constructor(app) {
    this.app = app;
    this.on = false;
    this.watch = null;
    this.last = null; // {lat, lon, accuracy_m, at}
    this.sent = new Map(); // incident -> {lat, lon, at}
    this.error = null;
  }

  toggle() {
    if (this.on) this.stop();
    else this.start();
    this.app.schedule();
  }

  start() {
    if (!("geolocation" in navigator)) {
      this.app.toasts.error("This device cannot share its position.", "Tell the dispatcher where you are in the channel.");
      return;
    }
    this.on = true;
    this.error = null;
    this.watch = navigator.geolocation.watchPosition(
      (pos) => this.onPosition(pos),
      (err) => this.onError(err),
      { enableHighAccuracy: true, maximumAge: 10_000, timeout: 30_000 },
    );
  }

  stop() {
    if (this.watch !== null) navigator.geolocation.clearWatch(this.watch);
    this.watch = null;
    this.on = false;
  }

  onError(err) {
    this.error = err;
    if (err.code === 1) {
      this.stop();
      this.app.toasts.error(
        "Position sharing is blocked.",
        "Allow location for this site in the browser settings, then turn sharing on again.",
      );
    }
    this.app.schedule();
  }

  /** A fresh position for a status report, if sharing is on. */
  current() {
    if (!this.on || !this.last || Date.now() - this.last.at > 60_000) return null;
    const { lat, lon, accuracy_m } = this.last;
    return accuracy_m === null ? { lat, lon } : { lat, lon, accuracy_m };
  }

  targets() {
    const app = this.app;
    const out = [];
    for (const [id, state] of app.states) {
      const mine = state.responders.get(app.me.id);
      if (state.status !== "closed" && mine && (mine.status === "en_route" || mine.status === "on_scene")) out.push(id);
    }
    if (!out.length && app.active && app.states.get(app.active)?.status !== "closed") out.push(app.active);
    return out;
  }

  onPosition(pos) {
    const c = pos.coords;
    this.last = {
      lat: Math.round(c.latitude * 1e6) / 1e6,
      lon: Math.round(c.longitude * 1e6) / 1e6,
      accuracy_m: Number.isFinite(c.accuracy) ? Math.min(1e6, Math.round(c.accuracy)) : null,
      at: Date.now(),
    };
    const now = Date.now();
    for (const incident of this.targets()) {
      const prev = this.sent.get(incident);
      if (prev) {
        const moved = distanceM(prev, this.last) ?? Infinity;
        if (now - prev.at < MIN_INTERVAL_MS) continue;
        if (moved < MIN_MOVE_M && now - prev.at < HEARTBEAT_MS) continue;
      }
      this.sent.set(incident, { ...this.last, at: now });
      const cmd = { type: "responder.position", incident, lat: this.last.lat, lon: this.last.lon };
      if (this.last.accuracy_m !== null) cmd.accuracy_m = this.last.accuracy_m;
      this.app.sync.enqueuePosition(cmd).catch((err) => {
        // Only a position the protocol refuses lands here (out of range): the
        // next fix is sent instead, but the reason must be visible.
        console.error(`position for ${incident} not queued:`, err?.message || err);
        this.sent.delete(incident);
      });
    }
    this.app.schedule();
  }

  render() {
    const b = this.app.geoButton;
    if (!b) return;
    b.setAttribute("aria-pressed", String(this.on));
    b.classList.toggle("on", this.on);
    setText(b, this.on ? (this.last ? "Sharing position" : "Finding position…") : "Share position: off");
  }
}
