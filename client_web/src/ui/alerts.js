// What needs the person: a toast (and a vibration on a phone) for each urgent
// message from someone else that arrives live, until it is acknowledged here
// or on another of this person's devices; and, from the cross-incident feed
// (SPEC 22), for a new Critical incident and an urgent message in an incident
// this device does not follow. While an alert is unseen and the
// person is elsewhere (another incident, another tab), the page title says so.

/** An urgent message older than this when it arrives (a catch-up) raises no alert. */
export const URGENT_FRESH_MS = 120_000;
const VIBRATION = [120, 60, 120];

/**
 * Whether `env` calls for an urgent alert to `me`: a live (not backlog),
 * recent, urgent post by someone else.
 */
export function isUrgentAlert(env, me, live, now = Date.now()) {
  return (
    live &&
    env.type === "message.posted" &&
    !!env.body?.urgent &&
    env.actor?.user !== me.id &&
    now - env.ts < URGENT_FRESH_MS
  );
}

/**
 * An alert's title as a drill when its incident is an exercise or a test
 * (SPEC 24.1, 28): "EXERCISE — Urgent from …", never a bare alarm. `mode`
 * is the feed entry's or the event body's (absent: live).
 */
export function drillTitle(mode, title) {
  return mode && mode !== "actual" ? `${mode.toUpperCase()} — ${title}` : title;
}

/**
 * The alert a feed entry calls for, or null: a Critical incident opened or
 * shared with us, or a recent urgent message for us. Mentions and tasks are
 * not alerted (they show in the list's "Needs me"): a toast for each would
 * cover the phone's header all day. `{key, incident, title, body, message?}`;
 * `key` is the live urgent alert's for the same message, so it alerts once.
 */
export function feedAlert(entry, now = Date.now()) {
  if (!entry || now - entry.ts >= URGENT_FRESH_MS) return null;
  if (entry.kind === "incident.opened" || entry.kind === "org.added") {
    if (entry.summary?.priority !== "critical") return null;
    return {
      key: `${entry.incident}:${entry.seq}`,
      incident: entry.incident,
      title: drillTitle(entry.mode, `New critical incident — ${entry.summary.title}`),
      body: entry.summary.location?.address || "",
    };
  }
  if (entry.kind !== "needs_you" || !entry.reasons?.includes("urgent")) return null;
  return {
    key: `${entry.incident}:${entry.message}`,
    incident: entry.incident,
    title: drillTitle(entry.mode, `Urgent from ${entry.author?.name || "someone"}`),
    body: entry.text || "",
    message: entry.message,
  };
}

const NEED_TITLES = {
  mention: "You were mentioned",
  task: "Task for you",
  capacity: "Capacity request",
  escalation: "Escalation",
  checkin: "Missed check-in",
  duress: "Duress alarm",
};

/** A fresh `needs_you` entry that raises no toast: a mention, a task, an alarm. */
export function needAlert(entry, now = Date.now()) {
  if (!entry || entry.kind !== "needs_you" || now - entry.ts >= URGENT_FRESH_MS) return null;
  const reason = ["duress", "checkin", "escalation", "task", "capacity", "mention"].find((r) =>
    entry.reasons?.includes(r),
  );
  if (!reason) return null;
  return {
    key: `${entry.incident}:${entry.seq}`,
    incident: entry.incident,
    title: NEED_TITLES[reason],
    body:
      reason === "task"
        ? entry.title || ""
        : reason === "mention"
          ? entry.text || ""
          : reason === "capacity"
            ? `${entry.author?.name || "Someone"} asks your organisation for capacity`
            : "",
  };
}

export class Alerts {
  constructor(app) {
    this.app = app;
    /** `${incident}:${seq}` -> its toast */
    this.toasts = new Map();
    /** Alerts not yet seen (the title counts them), by key -> incident. */
    this.unseen = new Map();
    this.baseTitle = document.title;
  }

  /** Look at each applied envelope: raise, or clear once I acknowledged. */
  onEvent(state, env, live) {
    const me = this.app.me;
    if (env.type === "message.acknowledged" && env.actor?.user === me.id) this.clear(state.id, env.body.message);
    if (isUrgentAlert(env, me, live)) this.urgent(state, env);
  }

  /** Feed entries (SPEC 22): alert what needs the person, once per subject;
   * a mention, a task or an alarm counts in the title and notifies (no toast). */
  onFeed(entries) {
    for (const entry of entries) {
      const alert = feedAlert(entry);
      if (alert && !this.toasts.has(alert.key)) this.raise(alert);
      else if (!alert) this.note(needAlert(entry));
    }
  }

  note(alert) {
    if (!alert || this.unseen.has(alert.key) || this.looking(alert.incident)) return;
    this.unseen.set(alert.key, alert.incident);
    this.showTitle();
    this.app.notifier?.notify(alert);
  }

  looking(incident) {
    const pane = this.app.panes.get(incident);
    return document.visibilityState === "visible" && pane?.visible && pane.channelShown();
  }

  urgent(state, env) {
    const org = this.app.orgName(env.actor.org);
    const key = `${state.id}:${env.seq}`;
    if (this.toasts.has(key)) return; // the feed alerted it first
    this.raise({
      key,
      incident: state.id,
      title: drillTitle(env.body.mode || state.mode, `Urgent from ${env.actor.name} (${org}) — ${state.title}`),
      body: env.body.text,
      message: env.seq,
    });
  }

  /** Vibrate, and unless the person is looking at it, a toast and the title. */
  raise(alert) {
    const app = this.app;
    if (navigator.vibrate && app.layout === "phone") navigator.vibrate(VIBRATION);
    if (this.looking(alert.incident)) return;
    const actions = [{ label: "Open", run: () => app.openIncident(alert.incident) }];
    if (alert.message) {
      actions.push({
        label: "Acknowledge",
        run: () => app.send({ type: "message.ack", incident: alert.incident, message: alert.message }),
      });
    }
    const node = app.toasts.urgent(alert.title, alert.body, actions);
    this.toasts.set(alert.key, node);
    this.unseen.set(alert.key, alert.incident);
    this.showTitle();
    app.notifier?.notify(alert);
  }

  /** The person opened an incident: its alerts are seen. */
  seen(incident) {
    for (const [key, id] of this.unseen) if (id === incident) this.unseen.delete(key);
    this.showTitle();
  }

  showTitle() {
    const n = this.unseen.size;
    document.title = n ? `(${n}) ⚠ Needs you — ${this.baseTitle}` : this.baseTitle;
  }

  /** An urgent message I acknowledged (here or on another device) needs no alert any more. */
  clear(incident, seq) {
    const key = `${incident}:${seq}`;
    this.toasts.get(key)?.remove();
    this.toasts.delete(key);
    this.unseen.delete(key);
    this.showTitle();
  }
}
