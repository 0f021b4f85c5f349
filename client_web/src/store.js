// What the browser keeps across reloads and offline starts, in IndexedDB:
// - outbox: commands not yet acknowledged, with their client ids;
// - kv: the session (token, user), per-incident projected state and
//   position (epoch, seq), read markers and UI preferences.
// Falls back to memory when IndexedDB is unavailable (private modes).

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
  }

  async open() {
    try {
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains("outbox")) db.createObjectStore("outbox", { keyPath: "id" });
        if (!db.objectStoreNames.contains("kv")) db.createObjectStore("kv");
      };
      this.db = await request(req);
    } catch (err) {
      console.warn("IndexedDB unavailable; nothing survives a reload", err);
      this.memory = { outbox: new Map(), kv: new Map() };
    }
    return this;
  }

  async tx(storeName, mode, fn) {
    if (this.memory) return fn(null);
    const tx = this.db.transaction(storeName, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
    const result = await fn(tx.objectStore(storeName));
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
