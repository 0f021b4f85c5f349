// What the browser keeps across reloads and offline starts, in IndexedDB:
// - outbox: commands not yet acknowledged, with their client ids;
// - kv: the session (token, user), per-incident projected state and
//   position (epoch, seq), read markers and UI preferences.
// Falls back to memory when IndexedDB is unavailable (private modes); the
// app shows that degraded state (persist.js). Every failure rejects: callers
// go through the Persistence tracker, which logs and shows it.

const DB_NAME = "liaison";
const DB_VERSION = 1;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class BrowserStore {
  constructor() {
    this.db = null;
    this.memory = null;
    /** Why IndexedDB could not be opened, when it could not (shown to the person). */
    this.openError = null;
  }

  async open() {
    try {
      this.db = await this.connect();
    } catch (err) {
      console.warn("IndexedDB unavailable; nothing survives a reload", err);
      this.openError = err;
      this.memory = { outbox: new Map(), kv: new Map() };
    }
    return this;
  }

  async connect() {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains("outbox")) db.createObjectStore("outbox", { keyPath: "id" });
      if (!db.objectStoreNames.contains("kv")) db.createObjectStore("kv");
    };
    const db = await request(req);
    // The browser may close the connection (storage pressure, the site's data
    // cleared) and another tab may need to upgrade it: open again on next use.
    db.onclose = () => {
      if (this.db === db) this.db = null;
    };
    db.onversionchange = () => {
      db.close();
      if (this.db === db) this.db = null;
    };
    return db;
  }

  async tx(storeName, mode, fn) {
    if (this.memory) return fn(null);
    if (!this.db) this.db = await this.connect();
    const tx = this.db.transaction(storeName, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new DOMException("transaction aborted", "AbortError"));
    });
    let result;
    try {
      result = await fn(tx.objectStore(storeName));
    } catch (err) {
      // The request failed (a value that cannot be stored, quota): undo the
      // transaction and report this error, the cause; the abort that follows
      // from it says nothing more.
      done.catch(() => undefined);
      try {
        tx.abort();
      } catch {
        // already finished: nothing to undo
      }
      throw err;
    }
    await done;
    return result;
  }

  // outbox ------------------------------------------------------------------

  async loadOutbox() {
    if (this.memory) return [...this.memory.outbox.values()];
    return this.tx("outbox", "readonly", (s) => request(s.getAll()));
  }

  async putOutbox(item) {
    if (this.memory) return void this.memory.outbox.set(item.id, structuredClone(item));
    await this.tx("outbox", "readwrite", (s) => request(s.put(item)));
  }

  async deleteOutbox(id) {
    if (this.memory) return void this.memory.outbox.delete(id);
    await this.tx("outbox", "readwrite", (s) => request(s.delete(id)));
  }

  // key/value ------------------------------------------------------------------

  async get(key) {
    if (this.memory) return this.memory.kv.get(key);
    return this.tx("kv", "readonly", (s) => request(s.get(key)));
  }

  async set(key, value) {
    if (this.memory) return void this.memory.kv.set(key, value);
    await this.tx("kv", "readwrite", (s) => request(s.put(value, key)));
  }

  async delete(key) {
    if (this.memory) return void this.memory.kv.delete(key);
    await this.tx("kv", "readwrite", (s) => request(s.delete(key)));
  }

  async keys(prefix) {
    if (this.memory) return [...this.memory.kv.keys()].filter((k) => k.startsWith(prefix));
    const all = await this.tx("kv", "readonly", (s) => request(s.getAllKeys()));
    return all.filter((k) => typeof k === "string" && k.startsWith(prefix));
  }
}
