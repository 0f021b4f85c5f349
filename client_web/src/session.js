// Who is signed in on this device: the token, the user, and the session kept
// in the browser store across reloads until it ends or the person signs out.
// No DOM: the sign-in form is ui/login.js, the timer and toasts ui/app.js.
//
// Access tokens are short (15 min by default, SPEC 4): the session refreshes
// them silently a minute before they expire, as long as the person was active
// within the idle timeout. Two minutes before an idle session would end, the
// app warns ("session ends in N minutes"); at the end it signs out and keeps
// the outbox. Refreshes are serialised across tabs (Web Locks) and a tab
// adopts a pair another tab already got: presenting a refresh token twice
// counts as theft and ends the session on the server.

import { COORDINATOR_ROLES } from "./protocol.js";

/** A stored session this close to its end is not started: it would end at once. */
const EXPIRY_MARGIN_MS = 60_000;
/** The access token is refreshed this long before it expires. */
export const REFRESH_LEAD_MS = 60_000;
/** The "session ends in N minutes" warning comes this long before the idle end. */
export const WARN_BEFORE_MS = 2 * 60_000;
/** Idle timeout when the server names none (an older server): its own default. */
const DEFAULT_IDLE_S = 30 * 60;

export class Session {
  /**
   * @param {{store: object, api: {login: Function}, save: (what: string, write: Function) => Promise<boolean>}} deps
   *   `save` is the persistence tracker's `track`: every store write goes through it.
   */
  constructor({ store, api, save, locks = globalThis.navigator?.locks }) {
    this.store = store;
    this.api = api;
    this.save = save;
    this.locks = locks;
    this.token = null;
    this.expires = 0;
    this.refreshToken = null;
    this.idleMs = DEFAULT_IDLE_S * 1000;
    /** When the person last did something (ms); the idle timeout counts from it. */
    this.lastActive = 0;
    this._refreshing = null;
    /** The signed-in person ({id, org, role, name, username}); kept after the session ends. */
    this.me = null;
    this.coordinator = false;
  }

  /**
   * The stored session, and whether it may be started as it is. `refreshable`:
   * its access token is too old but its refresh token may still get a new one.
   */
  async stored(now = Date.now()) {
    const session = await this.store.get("session");
    const fresh = !!session?.token && session.expires * 1000 > now + EXPIRY_MARGIN_MS;
    const idleMs = (session?.idle_timeout_s || DEFAULT_IDLE_S) * 1000;
    const refreshable = !fresh && !!session?.refresh_token && (session.active || 0) + idleMs > now;
    return { session, usable: fresh, refreshable };
  }

  /** Sign in and store the session; throws the ApiError of a refusal. */
  async login(username, password, now = Date.now()) {
    return this.keep(await this.api.login(username, password), now);
  }

  /** Store what a login or refresh answered; returns the stored session. */
  async keep(data, now = Date.now()) {
    const session = {
      token: data.token,
      expires: data.expires,
      refresh_token: data.refresh_token || null,
      idle_timeout_s: data.idle_timeout_s || DEFAULT_IDLE_S,
      user: data.user,
      // A refresh is not activity: the idle timeout keeps counting from the
      // person's last action (kept on reload).
      active: this.lastActive || now,
    };
    // Not saved: this tab still works; a reload asks to sign in again.
    await this.save("session", () => this.store.set("session", session));
    return session;
  }

  begin(session, now = Date.now()) {
    this.token = session.token;
    this.expires = session.expires;
    this.refreshToken = session.refresh_token || null;
    this.idleMs = (session.idle_timeout_s || DEFAULT_IDLE_S) * 1000;
    this.lastActive = Math.max(this.lastActive, session.active || now);
    const u = session.user;
    this.me = { id: u.id, org: u.org, role: u.role, name: u.name, username: u.username };
    this.coordinator = COORDINATOR_ROLES.has(this.me.role);
  }

  /** The person did something: the idle timeout starts again. */
  touch(now = Date.now()) {
    this.lastActive = Math.max(this.lastActive, now);
  }

  /**
   * What the session needs now: `idle` (it has ended: sign out), `warn`
   * (minutes left before the idle end), `refresh` (the access token is due),
   * and `at`, when to ask again (ms).
   */
  plan(now = Date.now()) {
    const idleEnd = this.lastActive + this.idleMs;
    if (now >= idleEnd) return { idle: true, warn: null, refresh: false, at: null };
    const refreshAt = this.expires * 1000 - REFRESH_LEAD_MS;
    const refresh = !!this.refreshToken && now >= refreshAt;
    const warnAt = idleEnd - WARN_BEFORE_MS;
    const warn = now >= warnAt ? Math.max(1, Math.ceil((idleEnd - now) / 60_000)) : null;
    const next = [idleEnd, now < warnAt ? warnAt : idleEnd, refresh ? now + 5_000 : refreshAt];
    return { idle: false, warn, refresh, at: Math.min(...next) };
  }

  /**
   * Trade the refresh token for a new pair, once at a time on this device.
   * Inside the lock the stored session is read again: if another tab has
   * refreshed already, its pair is adopted instead of presenting ours twice.
   * Throws the ApiError of a refusal (`unauthenticated`: the session ended).
   */
  refresh() {
    if (!this._refreshing) {
      const run = () => this._refresh();
      const locked = this.locks ? this.locks.request("liaison-refresh", run) : run();
      this._refreshing = locked.finally(() => (this._refreshing = null));
    }
    return this._refreshing;
  }

  async _refresh() {
    const stored = await this.store.get("session");
    if (stored?.refresh_token && stored.refresh_token !== this.refreshToken && stored.user?.id === this.me?.id) {
      this.begin(stored);
      return stored;
    }
    const session = await this.keep(await this.api.refresh(this.refreshToken));
    this.begin(session);
    return session;
  }

  /** End this session on the server too (best effort: signing out must work offline). */
  async logout() {
    try {
      await this.api.logout();
    } catch (err) {
      console.warn("sign-out: the server was not told", err);
    }
  }

  /** The store key of something this person's data holds. */
  key(name) {
    return `u:${this.me.id}:${name}`;
  }

  /** The server ended the session: a reload must ask to sign in. */
  forgetStored() {
    return this.save("session", () => this.store.delete("session"));
  }

  /**
   * Sign-out: nothing of the incidents stays on a shared device; only what this
   * person queued (the outbox) waits for their next sign-in. False if it failed.
   */
  erase() {
    return this.save("sign-out", async () => {
      await this.store.delete("session");
      for (const key of await this.store.keys(this.key(""))) await this.store.delete(key);
    });
  }
}
