// The incidents this device holds: the list's summaries (read over REST once
// connected, then kept current by the feed, SPEC 22),
// the states of the incidents followed live (folds of the events this
// organisation receives), read markers, the directory of organisations and
// people, and the saving of all of it through the persistence tracker.
// No DOM: the app passes in what it needs to hear about (`changed`, `forgot`).

import { batched } from "./dom.js";
import { apply, emptyState, counts } from "./projection.js";

/** Incidents held live (with counts) besides the open ones: fewer on a phone. */
export const MAX_FOLLOWED = { desk: 50, phone: 10 };
/** States are written at most this often (a busy incident changes many times a second). */
export const STATE_SAVE_MS = 1200;

/**
 * Which incidents to follow: the `max` most recently updated open ones, and
 * every incident open in a pane (`open`), whatever its status.
 */
export function followWanted(summaries, max, open = []) {
  const recent = [...summaries]
    .filter((s) => s.status !== "closed")
    .sort((a, b) => b.updated - a.updated)
    .slice(0, max)
    .map((s) => s.id);
  return [...new Set([...recent, ...open])];
}

export class Incidents {
  /**
   * @param {object} deps
   * @param {object} deps.store the browser store
   * @param {object} deps.api `orgs()`, `users()`, `incidents()` → `{incidents, complete}`
   * @param {(what: string, write: Function) => Promise<boolean>} deps.save the persistence tracker
   * @param {(name: string) => string} deps.key the signed-in person's store key of `name`
   * @param {() => boolean} deps.signedIn
   * @param {() => {max: number, open: string[]}} deps.followLimits see `followWanted`
   * @param {() => void} [deps.changed] something to show changed
   * @param {(id: string) => void} [deps.forgot] an incident is no longer held
   * @param {() => void} [deps.saveUi] write the layout with the states
   * @param {(err: Error) => void} [deps.failed] a REST read failed
   */
  constructor({ store, api, save, key, signedIn, followLimits, changed, forgot, saveUi, failed }) {
    Object.assign(this, { store, api, save, key, signedIn, followLimits });
    this.changed = changed || (() => {});
    this.forgot = forgot || (() => {});
    this.saveUi = saveUi || (() => {});
    this.failed = failed || ((err) => console.error(err));
    /** The live channel (sync.js) while signed in, else null. */
    this.sync = null;
    this.orgs = new Map();
    this.people = new Map();
    this.summaries = new Map();
    this.states = new Map();
    /** incident -> the seq read up to */
    this.read = new Map();
    /** The layout saved last time ({filters, panes, active}). */
    this.savedUi = {};
    this.dirtyStates = new Set();
    this.saveStates = batched(() => this.persistStates(), STATE_SAVE_MS);
    this.refreshing = false;
  }

  // ------------------------------------------------------------ persistence

  async restore() {
    const get = (name) => this.store.get(this.key(name));
    const [orgs, people, list, read, ui] = await Promise.all(
      ["orgs", "people", "list", "read", "ui"].map(get),
    );
    if (orgs) this.orgs = orgs;
    if (people) this.people = people;
    if (list) for (const s of list) this.summaries.set(s.id, s);
    if (read) this.read = read;
    this.savedUi = ui || {};
    for (const key of await this.store.keys(this.key("state:"))) {
      const state = await this.store.get(key);
      if (state?.id) this.states.set(state.id, state);
    }
  }

  /** Write the states changed since the last write, the read markers and the layout. */
  persistStates() {
    if (!this.signedIn()) return;
    for (const id of this.dirtyStates) {
      const state = this.states.get(id);
      if (state) this.save(`incident ${id}`, () => this.store.set(this.key(`state:${id}`), state));
    }
    this.dirtyStates.clear();
    this.save("read markers", () => this.store.set(this.key("read"), this.read));
    this.saveUi();
  }

  markStateDirty(id) {
    this.dirtyStates.add(id);
    this.saveStates();
  }

  /** Mark everything up to the state's seq read; false if nothing changed. */
  markRead(id) {
    const state = this.states.get(id);
    if (!state || (this.read.get(id) || 0) >= state.seq) return false;
    this.read.set(id, state.seq);
    this.saveStates();
    return true;
  }

  // ------------------------------------------------------------------ reads

  async loadDirectory() {
    try {
      const [orgs, users] = await Promise.all([this.api.orgs(), this.api.users()]);
      this.orgs = new Map(orgs.orgs.map((o) => [o.id, o]));
      for (const u of users.users) this.people.set(u.id, { name: u.name, org: u.org });
      this.save("organisations", () => this.store.set(this.key("orgs"), this.orgs));
      this.save("people", () => this.store.set(this.key("people"), this.people));
      this.changed();
    } catch (err) {
      this.failed(err);
    }
  }

  /**
   * Read the list; forget what it no longer holds, but only when it was read
   * whole (a paged read cut short says nothing of the incidents it did not reach).
   */
  async refreshList() {
    if (!this.signedIn() || this.refreshing) return;
    this.refreshing = true;
    try {
      const data = await this.api.incidents();
      const seen = new Set();
      for (const s of data.incidents) {
        seen.add(s.id);
        this.summaries.set(s.id, s);
      }
      if (data.complete) for (const id of [...this.summaries.keys()]) if (!seen.has(id)) this.forget(id);
      const list = [...this.summaries.values()];
      this.save("incident list", () => this.store.set(this.key("list"), list));
      this.followActive();
      this.changed();
    } catch (err) {
      this.failed(err);
    } finally {
      this.refreshing = false;
    }
  }

  /**
   * Feed entries (SPEC 22) into the list: an incident opened or shared with
   * us joins it (and is followed if it is among the most recent), a changed
   * one is patched. Returns the ids whose summary changed.
   */
  applyFeed(entries) {
    const touched = new Set();
    for (const e of entries) {
      if (!e || typeof e !== "object") continue;
      if ((e.kind === "incident.opened" || e.kind === "org.added") && e.summary?.id) {
        const known = this.summaries.get(e.incident);
        // An older summary never overwrites a newer one (the list read may be ahead).
        if (!known || (known.seq || 0) <= e.seq) this.summaries.set(e.incident, { ...known, ...e.summary });
        touched.add(e.incident);
      } else if (e.kind === "incident.changed") {
        const known = this.summaries.get(e.incident);
        if (!known || (known.seq || 0) > e.seq) continue;
        const { orgs_added: added, liaisons, ...fields } = e.changes || {};
        Object.assign(known, fields, { seq: e.seq, updated: Math.max(known.updated || 0, e.ts) });
        if (added) known.orgs = [...new Set([...(known.orgs || []), ...added])];
        if (liaisons) known.liaisons = { ...(known.liaisons || {}), ...liaisons };
        touched.add(e.incident);
      } else if (e.kind === "needs_you") {
        const known = this.summaries.get(e.incident);
        if (known) known.updated = Math.max(known.updated || 0, e.ts);
      }
    }
    if (touched.size) {
      const list = [...this.summaries.values()];
      this.save("incident list", () => this.store.set(this.key("list"), list));
      this.followActive();
      this.changed();
    }
    return touched;
  }

  // ------------------------------------------------------------ following

  /** Start the live channel from the positions of the states held. */
  attach(sync) {
    this.sync = sync;
    for (const [id, state] of this.states) sync.positions.set(id, state.epoch, state.seq);
  }

  /** Follow the most recently updated open incidents (and every open pane). */
  followActive() {
    const { max, open } = this.followLimits();
    for (const id of followWanted(this.summaries.values(), max, open)) this.ensureLoaded(id);
  }

  /**
   * Hold an incident: its state is the fold of the events this organisation
   * receives, from seq 1 (the backlog arrives over the live channel, then live
   * events), never seeded from the REST incident view: the client's own fold
   * of what it receives is the one it can check (see the differential test,
   * client_web/test/timeline.test.js).
   */
  ensureLoaded(id) {
    let state = this.states.get(id);
    if (!state) {
      state = emptyState(id);
      this.states.set(id, state);
      this.changed();
    }
    if (this.sync && !this.sync.positions.has(id)) this.sync.follow(id, state.epoch, state.seq);
    return Promise.resolve(state);
  }

  forget(id) {
    this.summaries.delete(id);
    this.states.delete(id);
    this.save(`incident ${id}`, () => this.store.delete(this.key(`state:${id}`)));
    this.sync?.unfollow(id);
    this.forgot(id);
    this.changed();
  }

  /** The server's log is not the one our position belongs to: start over from seq 0. */
  resync(id, epoch, why) {
    this.states.set(id, emptyState(id, epoch));
    this.markStateDirty(id);
    if (why === "out_of_range") console.warn(`incident ${id}: server is behind our position`);
    this.changed();
  }

  /**
   * Fold envelopes into the incident's state, in seq order; `onApplied(state,
   * env, live)` after each one (`live` is false for a first backlog). A gap
   * means our state and the follow position disagree: resume from the state.
   * False if the incident is not held.
   */
  fold(id, envs, onApplied = () => {}) {
    const state = this.states.get(id);
    if (!state) return false;
    const live = state.seq > 0;
    for (const env of envs) {
      if (env.seq <= state.seq) continue;
      if (env.seq !== state.seq + 1) {
        this.sync.positions.set(id, state.epoch, state.seq);
        this.sync.refollow([id]);
        break;
      }
      apply(state, env);
      onApplied(state, env, live);
    }
    const summary = this.summaries.get(id);
    if (summary) {
      Object.assign(summary, {
        title: state.title,
        status: state.status,
        priority: state.priority,
        seq: state.seq,
        updated: Math.max(summary.updated || 0, state.updated || 0),
        location: state.location,
        orgs: state.orgs,
      });
    }
    this.markStateDirty(id);
    return true;
  }

  // ------------------------------------------------------------- lookups

  /** What is known of an incident: its state once loaded, else the list's summary. */
  info(id) {
    const held = this.states.get(id);
    return held?.seq ? held : this.summaries.get(id) || null;
  }

  counts(id, me) {
    const state = this.states.get(id);
    if (!state) return { unread: 0, unacked: 0, myTasks: 0 };
    return counts(state, me, this.read.get(id) || 0);
  }

  orgName(id) {
    return this.orgs.get(id)?.name || id;
  }

  orgKind(id) {
    return this.orgs.get(id)?.kind || "other";
  }

  personName(state, user) {
    return state?.people.get(user)?.name || this.people.get(user)?.name || user;
  }
}
