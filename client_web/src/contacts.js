// Who to call on an incident and which authors are bots (GET
// /api/v1/incidents/{id}/contacts): asked again when the incident's liaisons
// or organisations change or someone new acts, at most every few seconds.

const MIN_INTERVAL_MS = 4000;

export class Contacts {
  constructor(api, changed) {
    this.api = api;
    this.changed = changed;
    this.byIncident = new Map(); // id -> {liaisons, bots, key}
    this.bots = new Set();
    this.asked = new Map(); // id -> {key, at}
  }

  /** What is known for incident `state` (or null); asks the server when it may be stale. */
  of(state) {
    const key = `${state.orgs.join(",")}|${JSON.stringify(state.liaisons)}|${state.people.size}`;
    const asked = this.asked.get(state.id);
    if (!asked || (asked.key !== key && Date.now() - asked.at > MIN_INTERVAL_MS)) {
      this.asked.set(state.id, { key, at: Date.now() });
      this.load(state.id, key);
    }
    return this.byIncident.get(state.id) || null;
  }

  async load(id, key) {
    try {
      const got = await this.api.request("GET", `/api/v1/incidents/${encodeURIComponent(id)}/contacts`);
      this.byIncident.set(id, { ...got, key });
      for (const b of got.bots || []) this.bots.add(b);
      this.changed();
    } catch (err) {
      // Offline or refused: the names stay as the log has them, without numbers.
      console.warn("contacts of", id, "not loaded:", err?.code || err);
      this.asked.delete(id);
    }
  }

  isBot(user) {
    return this.bots.has(user);
  }
}
