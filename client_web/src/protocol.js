// Liaison protocol v1, client side: constants, limits and command validation.
//
// validateCommand() mirrors the server's parser (protocol/v1.py and
// protocol/fields.py) field by field and in the same order, so the client can
// refuse a frame before it is queued and name the same field the server would.
// The golden vectors in protocol/vectors/commands.json pin the behaviour
// (test/vectors.test.js).

export const PROTOCOL_VERSION = 1;

export const DEFAULT_LIMITS = Object.freeze({
  max_frame_bytes: 65536,
  max_text_chars: 8000,
  max_short_chars: 300,
  max_id_chars: 64,
  max_list_items: 100,
  max_depth: 8,
  max_page: 1000,
});

export const INCIDENT_STATUSES = ["reported", "active", "contained", "resolved", "closed"];
export const PRIORITIES = ["low", "normal", "high", "critical"];
export const RESPONDER_STATUSES = ["available", "en_route", "on_scene", "unavailable"];
export const TASK_STATUSES = [
  "open",
  "assigned",
  "accepted",
  "declined",
  "in_progress",
  "completed",
  "cancelled",
];
export const TASK_FINAL = new Set(["completed", "cancelled"]);
export const COORDINATOR_ROLES = new Set(["dispatcher", "supervisor", "admin", "bot"]);

/** Each write command and the event type it appends. */
export const EVENT_OF_COMMAND = {
  "incident.create": "incident.created",
  "incident.update": "incident.updated",
  "incident.status": "incident.status_changed",
  "message.post": "message.posted",
  "message.edit": "message.edited",
  "message.retract": "message.retracted",
  "message.ack": "message.acknowledged",
  "task.create": "task.created",
  "task.assign": "task.assigned",
  "task.accept": "task.accepted",
  "task.decline": "task.declined",
  "task.start": "task.started",
  "task.complete": "task.completed",
  "task.cancel": "task.cancelled",
  "responder.status": "responder.status",
  "responder.position": "responder.position",
  "review.submit": "review.submit",
  "review.action_done": "review.action_done",
  "receipt.mark": "receipt.recorded",
  "checkin.start": "checkin.started",
  "checkin.ok": "checkin.ok",
  "checkin.end": "checkin.ended",
  "checkin.duress": "checkin.duress",
  "checkin.resolve": "checkin.resolved",
  "capacity.request": "capacity.requested",
  "capacity.accept": "capacity.accepted",
  "capacity.decline": "capacity.declined",
};

/** Receipt states a device reports; acknowledging is `message.ack` (SPEC 22.1). */
export const RECEIPT_STATES = ["delivered", "seen"];
export const CHECKIN_MAX_S = 24 * 3600;
export const TASK_DUE_MAX_S = 7 * 24 * 3600;

/** The id a receipt must carry: one per person, subject and state (SPEC 8.13). */
export function receiptId(incident, kind, subject, state) {
  return `rcpt-${incident}-${kind}-${subject}-${state}`;
}

function bounded(f, key, value, max) {
  if (value !== null && value > max) {
    throw new CommandInvalid("invalid", `${key}: at most ${max}`, key);
  }
}

/** Task transitions: command type -> statuses it may start from (SPEC 8.9). */
export const TASK_TRANSITIONS = {
  "task.accept": new Set(["assigned"]),
  "task.decline": new Set(["assigned"]),
  "task.start": new Set(["accepted"]),
  "task.complete": new Set(["accepted", "in_progress"]),
  "task.cancel": new Set(["open", "assigned", "accepted", "declined", "in_progress"]),
};

/** A command the client refuses before sending, shaped like the server's error. */
export class CommandInvalid extends Error {
  constructor(code, message, field) {
    super(message);
    this.code = code;
    this.field = field;
  }

  toWire() {
    const error = { code: this.code, message: this.message, retryable: false };
    if (this.field) error.detail = { field: this.field };
    return error;
  }
}

const invalid = (field, why) => new CommandInvalid("invalid", `${field}: ${why}`, field);

/** Characters as the protocol counts them: Unicode code points. */
export function codePoints(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isInt = (v) => typeof v === "number" && Number.isInteger(v);
const MAX_INT = 2 ** 53;

class Fields {
  constructor(obj, where, limits) {
    if (!isObject(obj)) throw invalid(where || "message", "must be an object");
    this.obj = obj;
    this.where = where;
    this.limits = limits;
  }

  name(key) {
    return this.where ? `${this.where}.${key}` : key;
  }

  get(key, required) {
    const value = Object.hasOwn(this.obj, key) ? this.obj[key] : undefined;
    if ((value === undefined || value === null) && required) {
      throw invalid(this.name(key), "is required");
    }
    return value ?? null;
  }

  text(key, { required = true, maxChars } = {}) {
    const value = this.get(key, required);
    if (value === null) return null;
    if (typeof value !== "string") throw invalid(this.name(key), "must be a string");
    const limit = maxChars ?? this.limits.max_short_chars;
    if (codePoints(value) > limit) throw invalid(this.name(key), `longer than ${limit} characters`);
    if (required && !value.trim()) throw invalid(this.name(key), "must not be empty");
    return value;
  }

  ident(key) {
    return this.text(key, { maxChars: this.limits.max_id_chars });
  }

  optIdent(key) {
    return this.text(key, { required: false, maxChars: this.limits.max_id_chars });
  }

  integer(key, { required = true, minimum = 0 } = {}) {
    const value = this.get(key, required);
    if (value === null) return null;
    if (!isInt(value)) throw invalid(this.name(key), "must be an integer");
    if (value < minimum || value > MAX_INT) {
      throw invalid(this.name(key), `must be between ${minimum} and 2^53`);
    }
    return value;
  }

  number(key, low, high, required) {
    const value = this.get(key, required);
    if (value === null) return null;
    if (typeof value !== "number") throw invalid(this.name(key), "must be a number");
    if (!Number.isFinite(value) || value < low || value > high) {
      throw invalid(this.name(key), `must be between ${low} and ${high}`);
    }
    return value;
  }

  flag(key) {
    const value = this.get(key, false);
    if (value === null) return false;
    if (typeof value !== "boolean") throw invalid(this.name(key), "must be true or false");
    return value;
  }

  choice(key, options, { required = true } = {}) {
    const value = this.text(key, { required });
    if (value !== null && !options.includes(value)) {
      throw invalid(this.name(key), `must be one of ${options.join(", ")}`);
    }
    return value;
  }

  strList(key, { required = false } = {}) {
    const value = this.get(key, required);
    if (value === null) return null;
    if (!Array.isArray(value)) throw invalid(this.name(key), "must be a list of strings");
    if (value.length > this.limits.max_list_items) {
      throw invalid(this.name(key), `more than ${this.limits.max_list_items} items`);
    }
    for (const item of value) {
      if (typeof item !== "string" || !item || codePoints(item) > this.limits.max_id_chars) {
        throw invalid(this.name(key), "items must be non-empty short strings");
      }
    }
    return [...new Set(value)];
  }

  objList(key) {
    const value = this.get(key, true);
    if (!Array.isArray(value) || value.length === 0) {
      throw invalid(this.name(key), "must be a non-empty list");
    }
    if (value.length > this.limits.max_list_items) {
      throw invalid(this.name(key), `more than ${this.limits.max_list_items} items`);
    }
    return value.map((item, i) => new Fields(item, `${this.name(key)}[${i}]`, this.limits));
  }

  sub(key, { required = false } = {}) {
    const value = this.get(key, required);
    if (value === null) return null;
    return new Fields(value, this.name(key), this.limits);
  }

  strMap(key) {
    const value = this.get(key, false);
    if (value === null) return null;
    const bad = () => invalid(this.name(key), "must be an object of short strings");
    if (!isObject(value) || Object.keys(value).length > this.limits.max_list_items) throw bad();
    for (const [k, v] of Object.entries(value)) {
      if (typeof v !== "string" || codePoints(k) > this.limits.max_id_chars) throw bad();
      if (codePoints(v) > this.limits.max_id_chars) {
        throw invalid(this.name(key), "values must be short strings");
      }
    }
    return value;
  }
}

export const TLP_LABELS = ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"];
export const INCIDENT_LABELS = ["CLEAR", "GREEN", "AMBER"];

function incidentBase(f) {
  f.ident("id");
  f.ident("incident");
  f.strList("visibility");
  f.choice("tlp", TLP_LABELS, { required: false });
  f.strList("recipients");
}

/** `subject`: the person an incident or task is about (SPEC 8.3), protected fields. */
function subject(f) {
  const sub = f.sub("subject");
  if (!sub) return;
  const dob = sub.text("dob", { required: false, maxChars: 10 });
  if (dob !== null && !isIsoDate(dob)) throw invalid("subject.dob", "expected YYYY-MM-DD");
  const values = [
    dob,
    sub.text("name", { required: false, maxChars: 200 }),
    sub.text("phone", { required: false, maxChars: 40 }),
    sub.text("address", { required: false, maxChars: 500 }),
  ];
  if (values.every((v) => v === null)) throw invalid("subject", "empty");
}

function isIsoDate(text) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return false;
  const d = new Date(text + "T00:00:00Z");
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === text;
}

function location(f) {
  f.number("lat", -90, 90, true);
  f.number("lon", -180, 180, true);
  f.text("address", { required: false });
}

function position(f) {
  f.number("lat", -90, 90, true);
  f.number("lon", -180, 180, true);
  f.number("accuracy_m", 0, 1e6, false);
}

function assignee(f) {
  const org = f.optIdent("org");
  const user = f.optIdent("user");
  if (org === null && user === null) {
    throw new CommandInvalid("invalid", `${f.where}: needs org or user`, null);
  }
}

function transition(f) {
  incidentBase(f);
  f.integer("task", { minimum: 1 });
  f.text("note", { required: false, maxChars: f.limits.max_text_chars });
}


/** An incident's external reference (CAD number), as the server checks it (SPEC 18.3). */
export const EXTERNAL_REF = /^[A-Za-z0-9][A-Za-z0-9._/:#-]*$/;
export const EXTERNAL_REF_MAX = 64;

export function externalRefProblem(value) {
  if (typeof value !== "string") return "must be a string";
  if (!value) return "must not be empty";
  if (value.length > EXTERNAL_REF_MAX) return `longer than ${EXTERNAL_REF_MAX} characters`;
  if (!EXTERNAL_REF.test(value)) return "letters, digits and - _ . / : # only, starting with a letter or digit";
  return null;
}

function externalRef(f) {
  const value = f.get("external_ref", false);
  if (value === null) return;
  const problem = externalRefProblem(value);
  if (problem) throw invalid(f.name("external_ref"), problem);
}

const PARSERS = {
  follow(f) {
    for (const t of f.objList("incidents")) {
      t.ident("incident");
      t.integer("after_seq", { required: false });
      t.optIdent("epoch");
    }
  },
  unfollow(f) {
    f.strList("incidents", { required: true });
  },
  "feed.subscribe"(f) {
    f.text("after", { required: false, maxChars: 80 });
    f.strList("kinds");
  },
  "feed.unsubscribe"() {},
  "incident.create"(f) {
    const loc = f.sub("location");
    f.choice("tlp", INCIDENT_LABELS, { required: false });
    subject(f);
    f.ident("id");
    f.text("title");
    f.text("category", { maxChars: 64 });
    f.choice("priority", PRIORITIES, { required: false });
    if (loc) location(loc);
    f.strList("orgs");
    f.optIdent("lead_org");
    f.strMap("liaisons");
    f.text("description", { required: false, maxChars: f.limits.max_text_chars });
    externalRef(f);
  },
  "incident.update"(f) {
    const loc = f.sub("location");
    subject(f);
    incidentBase(f);
    f.text("title", { required: false });
    f.text("category", { required: false, maxChars: 64 });
    f.choice("priority", PRIORITIES, { required: false });
    if (loc) location(loc);
    f.strList("add_orgs");
    f.optIdent("lead_org");
    f.strMap("liaisons");
    f.text("description", { required: false, maxChars: f.limits.max_text_chars });
    externalRef(f);
  },
  "incident.status"(f) {
    incidentBase(f);
    f.choice("status", INCIDENT_STATUSES);
    f.text("note", { required: false });
  },
  "message.post"(f) {
    const mentions = f.sub("mentions");
    incidentBase(f);
    f.text("text", { maxChars: f.limits.max_text_chars });
    if (mentions) {
      mentions.strList("users");
      mentions.strList("orgs");
    }
    f.integer("reply_to", { required: false, minimum: 1 });
    f.flag("urgent");
  },
  "message.edit"(f) {
    incidentBase(f);
    f.integer("message", { minimum: 1 });
    f.text("text", { maxChars: f.limits.max_text_chars });
  },
  "message.retract"(f) {
    incidentBase(f);
    f.integer("message", { minimum: 1 });
  },
  "message.ack"(f) {
    incidentBase(f);
    f.integer("message", { minimum: 1 });
  },
  "task.create"(f) {
    const who = f.sub("assignee");
    bounded(f, "due_in_s", f.integer("due_in_s", { required: false, minimum: 1 }), TASK_DUE_MAX_S);
    subject(f);
    incidentBase(f);
    f.text("title");
    f.text("details", { required: false, maxChars: f.limits.max_text_chars });
    if (who) assignee(who);
  },
  "task.assign"(f) {
    const who = f.sub("assignee", { required: true });
    incidentBase(f);
    f.integer("task", { minimum: 1 });
    assignee(who);
  },
  "task.accept": transition,
  "task.decline": transition,
  "task.start": transition,
  "task.complete": transition,
  "task.cancel": transition,
  "responder.status"(f) {
    const pos = f.sub("position");
    incidentBase(f);
    f.choice("status", RESPONDER_STATUSES);
    if (pos) position(pos);
  },
  "responder.position"(f) {
    incidentBase(f);
    position(f);
  },
  "review.submit"(f) {
    const rating = f.integer("rating", { minimum: 1 });
    if (rating > 5) throw invalid("rating", "must be between 1 and 5");
    const actions = f.get("actions", false) ? f.objList("actions") : [];
    for (const a of actions) {
      a.ident("id");
      a.text("text", { maxChars: f.limits.max_text_chars });
      a.ident("owner");
      a.number("due", 0, MAX_DUE_S, true);
    }
    const ids = actions.map((a) => a.obj.id);
    if (new Set(ids).size !== ids.length) throw invalid("actions", "ids must be unique");
    incidentBase(f);
    f.text("went_well", { maxChars: f.limits.max_text_chars });
    f.text("went_badly", { maxChars: f.limits.max_text_chars });
  },
  "review.action_done"(f) {
    incidentBase(f);
    f.ident("action_id");
    f.text("note", { required: false, maxChars: f.limits.max_text_chars });
  },
  "receipt.mark"(f) {
    const message = f.integer("message", { required: false, minimum: 1 });
    const task = f.integer("task", { required: false, minimum: 1 });
    if ((message === null) === (task === null)) {
      throw new CommandInvalid("invalid", "receipt: name a message or a task", "message");
    }
    const state = f.choice("state", RECEIPT_STATES);
    incidentBase(f);
    const [kind, ref] = message !== null ? ["message", message] : ["task", task];
    const expected = receiptId(f.obj.incident, kind, ref, state);
    if (f.obj.id !== expected) {
      throw new CommandInvalid("invalid", `id: a receipt's id is '${expected}'`, "id");
    }
  },
  "checkin.start"(f) {
    bounded(f, "interval_s", f.integer("interval_s", { minimum: 1 }), CHECKIN_MAX_S);
    incidentBase(f);
    const pos = f.sub("position");
    if (pos) position(pos);
  },
  "checkin.ok": checkinWithPosition,
  "checkin.end"(f) {
    incidentBase(f);
  },
  "checkin.duress": checkinWithPosition,
  "checkin.resolve"(f) {
    incidentBase(f);
    f.ident("user");
    f.text("note", { required: false, maxChars: f.limits.max_text_chars });
  },
  "capacity.request"(f) {
    incidentBase(f);
    f.ident("org");
    capacityItems(f.sub("items", { required: true }));
    f.text("note", { required: false, maxChars: f.limits.max_text_chars });
  },
  "capacity.accept": capacityAnswer,
  "capacity.decline": capacityAnswer,
};

// SPEC 27.3 (protocol/capacity.py): counts of at least 1, or languages.
export const CAPACITY_COUNTS = ["beds", "staff_on_duty", "vehicles"];
export const CAPACITY_ITEMS = [...CAPACITY_COUNTS, "opening_hours", "languages", "note"];

function capacityItems(items) {
  const keys = Object.keys(items.obj);
  if (!keys.length) throw invalid("items", "name at least one item");
  for (const key of keys) {
    const v = items.obj[key];
    if (key === "languages") {
      if (!Array.isArray(v) || v.length > 20 || !v.every((c) => typeof c === "string" && /^[a-z]{2,3}$/.test(c))) {
        throw invalid(items.name(key), "must be a list of ISO 639 codes");
      }
    } else if (!CAPACITY_COUNTS.includes(key)) {
      throw invalid(items.name(key), "not requestable");
    } else if (!isInt(v) || v < 1 || v > 100000) {
      throw invalid(items.name(key), "must be a whole number from 1 to 100000");
    }
  }
}

function capacityAnswer(f) {
  incidentBase(f);
  f.integer("request", { minimum: 1 });
  f.text("note", { required: false, maxChars: f.limits.max_text_chars });
}

/** Latest due time of a review's follow-up action (Unix seconds, year 9999). */
export const MAX_DUE_S = 253402300799;

function checkinWithPosition(f) {
  incidentBase(f);
  const pos = f.sub("position");
  if (pos) position(pos);
}

export const COMMAND_TYPES = Object.keys(PARSERS);

/**
 * Validate a command frame the way the server does.
 * Returns the command type, or throws CommandInvalid ({code, field}).
 */
export function validateCommand(frame, limits = DEFAULT_LIMITS) {
  const bytes = new TextEncoder().encode(JSON.stringify(frame) ?? "").length;
  if (bytes > limits.max_frame_bytes) {
    throw new CommandInvalid("too_large", `frame of ${bytes} bytes`, null);
  }
  const f = new Fields(frame, "", limits);
  const type = f.text("type", { maxChars: 64 });
  const parse = PARSERS[type];
  if (!parse) throw new CommandInvalid("unknown_type", `unknown message type '${type}'`, null);
  parse(f);
  return type;
}

/** A fresh client action id: generated once, when the user acts (SPEC 12). */
export function newClientId() {
  if (globalThis.crypto?.randomUUID) return "w-" + globalThis.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return "w-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The organisations a message mentions (directly, or through a mentioned
 * user's organisation) that its restriction leaves out (SPEC 8.6). The
 * server refuses such a post with `invalid` (detail.field "mentions"); the
 * composer asks first, so restricting a message is a deliberate act.
 * `visibility`: null (everyone) or org ids; `orgOfUser(id)`: an org id or null.
 */
export function mentionsOutside(visibility, mentions, orgOfUser) {
  if (!visibility) return [];
  const inside = new Set(visibility);
  const orgs = [...(mentions?.orgs ?? []), ...(mentions?.users ?? []).map(orgOfUser)];
  return [...new Set(orgs.filter((o) => o && !inside.has(o)))].sort();
}
