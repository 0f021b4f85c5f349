// Who is signed in on this device: the token, the user, and the session kept
// in the browser store across reloads until it ends or the person signs out.
// No DOM: the sign-in form is ui/login.js.

import { COORDINATOR_ROLES } from "./protocol.js";

/** A stored session this close to its end is not started: it would end at once. */
const EXPIRY_MARGIN_MS = 60_000;

export class Session {
  /**
   * @param {{store: object, api: {login: Function}, save: (what: string, write: Function) => Promise<boolean>}} deps
   *   `save` is the persistence tracker's `track`: every store write goes through it.
   */
  constructor({ store, api, save }) {
    this.store = store;
    this.api = api;
    this.save = save;
    this.token = null;
    this.expires = 0;
    /** The signed-in person ({id, org, role, name, username}); kept after the session ends. */
    this.me = null;
    this.coordinator = false;
  }

  /** The stored session, and whether it may be started as it is. */
  async stored(now = Date.now()) {
    const session = await this.store.get("session");
    return { session, usable: !!session?.token && session.expires * 1000 > now + EXPIRY_MARGIN_MS };
  }

  /** Sign in and store the session; throws the ApiError of a refusal. */
  async login(username, password) {
    const data = await this.api.login(username, password);
    const session = { token: data.token, expires: data.expires, user: data.user };
    // Not saved: this tab still works; a reload asks to sign in again.
    await this.save("session", () => this.store.set("session", session));
    return session;
  }

  begin(session) {
    this.token = session.token;
    this.expires = session.expires;
    const u = session.user;
    this.me = { id: u.id, org: u.org, role: u.role, name: u.name, username: u.username };
    this.coordinator = COORDINATOR_ROLES.has(this.me.role);
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
