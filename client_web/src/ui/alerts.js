// Urgent messages: a toast (and a vibration on a phone) for each urgent
// message from someone else that arrives live, until it is acknowledged here
// or on another of this person's devices.

/** An urgent message older than this when it arrives (a catch-up) raises no alert. */
export const URGENT_FRESH_MS = 120_000;

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

export class Alerts {
  constructor(app) {
    this.app = app;
    /** `${incident}:${seq}` -> its toast */
    this.toasts = new Map();
  }

  /** Look at each applied envelope: raise, or clear once I acknowledged. */
  onEvent(state, env, live) {
    const me = this.app.me;
    if (env.type === "message.acknowledged" && env.actor?.user === me.id) this.clear(state.id, env.body.message);
    if (isUrgentAlert(env, me, live)) this.urgent(state, env);
  }

  urgent(state, env) {
    const app = this.app;
    if (navigator.vibrate && app.layout === "phone") navigator.vibrate([120, 60, 120]);
    const pane = app.panes.get(state.id);
    if (pane?.visible && pane.channelShown() && document.visibilityState === "visible") return;
    const org = app.orgName(env.actor.org);
    const node = app.toasts.urgent(`Urgent from ${env.actor.name} (${org}) — ${state.title}`, env.body.text, [
      { label: "Open", run: () => app.openIncident(state.id) },
      {
        label: "Acknowledge",
        run: () => app.send({ type: "message.ack", incident: state.id, message: env.seq }),
      },
    ]);
    this.toasts.set(`${state.id}:${env.seq}`, node);
  }

  /** An urgent message I acknowledged (here or on another device) needs no alert any more. */
  clear(incident, seq) {
    const key = `${incident}:${seq}`;
    this.toasts.get(key)?.remove();
    this.toasts.delete(key);
  }
}
