// Hash-chain verification of an incident's timeline (SPEC section 14.3).
// Used by the supervisor's replay ("chain verified") and by the vector tests.

const FLOAT_KEYS = new Set(["lat", "lon", "accuracy_m"]);
/** Keys that hold a float only inside the array named: a review action's
 * `due` (Unix seconds) is a float, other `due`s (escalations, tasks,
 * check-ins) are integer milliseconds (SPEC 14.1). */
const FLOAT_KEYS_IN = new Map([["actions", new Set(["due"])]]);

/** orjson's float format: shortest round-trip, always a fraction or an exponent. */
export function canonFloat(f) {
  if (Object.is(f, -0)) return "-0.0";
  const a = Math.abs(f);
  if (Number.isInteger(f) && a < 1e16) return String(f) + ".0";
  if ((a >= 1e-6 && a < 1e-5) || (a >= 1e16 && a < 1e21)) return f.toExponential();
  return String(f);
}

function byCodePoint(a, b) {
  const A = Array.from(a);
  const B = Array.from(b);
  for (let i = 0; i < Math.min(A.length, B.length); i++) {
    const d = A[i].codePointAt(0) - B[i].codePointAt(0);
    if (d) return d;
  }
  return A.length - B.length;
}

/** canonical_json: sorted keys by code point, no whitespace, floats as orjson writes them. */
export function canon(v, key, within) {
  if (Array.isArray(v)) return "[" + v.map((x) => canon(x, key, within)).join(",") + "]";
  if (v !== null && typeof v === "object") {
    return (
      "{" +
      Object.keys(v)
        .sort(byCodePoint)
        .map((k) => JSON.stringify(k) + ":" + canon(v[k], k, key))
        .join(",") +
      "}"
    );
  }
  if (typeof v === "number" && (FLOAT_KEYS.has(key) || FLOAT_KEYS_IN.get(within)?.has(key))) {
    return canonFloat(v);
  }
  return JSON.stringify(v);
}

/** Lowercase hex sha256 of a string's UTF-8 bytes, or of raw bytes. */
export async function sha256hex(data) {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const d = await globalThis.crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

function hexBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * An event's digest (SPEC 14.1). Chain rule 2: sha256 of the 32 salt bytes
 * followed by the canonical content's UTF-8 bytes. An envelope without `salt`
 * was stored before salts (rule 1): sha256 of the canonical content alone.
 */
export async function eventDigest(e) {
  const content = new TextEncoder().encode(canon(digestContent(e)));
  if (e.salt === undefined || e.salt === null) return sha256hex(content);
  const salt = hexBytes(e.salt);
  const input = new Uint8Array(salt.length + content.length);
  input.set(salt);
  input.set(content, salt.length);
  return sha256hex(input);
}

export function digestContent(e) {
  return {
    incident: e.incident,
    seq: e.seq,
    epoch: e.epoch,
    type: e.type,
    ts_ms: e.ts,
    actor_user: e.actor.user,
    actor_org: e.actor.org,
    client_id: e.cid,
    visibility: e.visibility,
    body: e.body,
  };
}

/**
 * The first bad seq of a whole timeline (seq 1..n), or null if the chain holds.
 * Placeholders are checked by their links only: their salt is never sent.
 */
export async function verifyChain(envelopes) {
  let prev = "0".repeat(64);
  for (const [i, e] of envelopes.entries()) {
    if (e.seq !== i + 1) return e.seq;
    // A placeholder, or an envelope with fields redacted for this reader
    // (SPEC 9.4: it carries no salt), is checked by its links only.
    if (e.type !== "restricted" && !e.redacted) {
      if ((await eventDigest(e)) !== e.digest) return e.seq;
    }
    if ((await sha256hex(prev + e.digest)) !== e.hash) return e.seq;
    prev = e.hash;
  }
  return null;
}
