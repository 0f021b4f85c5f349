// Lone-worker safety and receipts (SPEC 22): the alarm banner (a missed
// check-in or a duress, until someone resolves it), the phone's check-in
// timer and duress button, and the receipts this device sends for urgent
// messages and tasks (delivered when they arrive, seen when shown).

import { h, setChildren } from "../dom.js";
import { clock } from "../format.js";
import { receiptId } from "../protocol.js";
import { openAlarms } from "../projection.js";
import { positionView } from "../labels.js";

/** Check-in intervals offered on the phone, minutes. */
export const CHECKIN_MINUTES = [15, 30, 60, 120];
/** A first tap on Duress arms it for this long; the second raises it. */
const DURESS_ARM_MS = 4000;

/** Receipts this device sends: once per person, subject and state (the id says so). */
export class Receipts {
  constructor(app) {
    this.app = app;
    this.sent = new Set();
  }

  /** An urgent message or a task of mine arrived (live or from the backlog). */
  onEvent(state, env) {
    const me = this.app.me;
    if (env.actor?.user === me.id || state.status === "closed") return;
    if (env.type === "message.posted" && env.body?.urgent) {
      const m = state.messages.get(env.seq);
      if (m && !m.retracted && !(me.id in m.acks)) this.mark(state, "message", env.seq, "delivered");
    }
    if (env.type === "task.created" || env.type === "task.assigned") {
      const id = env.type === "task.created" ? env.seq : env.body.task;
      const task = state.tasks.get(id);
      if (task && mineToDo(task, me)) this.mark(state, "task", id, "delivered");
    }
  }

  /** Urgent messages on screen now are seen. */
  seen(state, messages) {
    const me = this.app.me;
    for (const m of messages) {
      if (m.urgent && !m.retracted && m.author.user !== me.id) this.mark(state, "message", m.seq, "seen");
    }
  }

  mark(state, kind, ref, receipt) {
    const item = kind === "message" ? state.messages.get(ref) : state.tasks.get(ref);
    const key = receiptId(state.id, kind, ref, receipt);
    if (!item || this.sent.has(key) || item.receipts?.[receipt]?.[this.app.me.id]) return;
    if (kind === "task" && item.created_by === this.app.me.id) return;
    this.sent.add(key);
    this.app.send({ type: "receipt.mark", id: key, incident: state.id, [kind]: ref, state: receipt });
  }
}

function mineToDo(task, me) {
  return task.assignee.user ? task.assignee.user === me.id : task.assignee.org === me.org;
}

/** "delivered 19:05 · seen 19:06 · acknowledged 19:07": the earliest of each state. */
export function receiptLine(item, acks) {
  const first = (times) => {
    const values = Object.values(times || {});
    return values.length ? Math.min(...values) : null;
  };
  const parts = [
    ["delivered", first(item.receipts?.delivered)],
    ["seen", first(item.receipts?.seen)],
    ["acknowledged", first(acks)],
  ].filter(([, ts]) => ts !== null);
  return parts.map(([name, ts]) => `${name} ${clock(ts)}`).join(" · ");
}

/** "Escalated 19:10: not acknowledged by Harbour Street Shelter". */
export function escalationLine(app, item) {
  const last = item.escalations?.[item.escalations.length - 1];
  if (!last) return null;
  const why = last.type === "escalation.overdue" ? "overdue" : "not acknowledged";
  return `Escalated ${clock(last.ts)}: ${why} by ${(last.orgs || []).map((o) => app.orgName(o)).join(", ")}`;
}

function positionText(c) {
  const view = positionView(c.position);
  if (view.kind === "none") return "no position known";
  if (view.kind === "redacted") return "position not shared with your organisation";
  const { lat, lon } = c.position;
  return `last position ${lat.toFixed(5)}, ${lon.toFixed(5)}${c.position_ts ? ` (${clock(c.position_ts)})` : ""}`;
}

/** The banner and the check-in controls of one incident pane. */
export class SafetyBar {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.banner = h("div", { class: "alarm-banner", role: "alert", hidden: true });
    this.controls = h("div", { class: "checkin-bar", role: "group", "aria-label": "Check-in", hidden: true });
    this.minutes = h(
      "select",
      { class: "checkin-minutes", "aria-label": "Check in every" },
      CHECKIN_MINUTES.map((m) => h("option", { value: String(m), selected: m === 30 }, `${m} min`)),
    );
    this.armedUntil = 0;
    this.el = h("div", { class: "safety" }, this.banner, this.controls);
  }

  send(cmd) {
    const position = this.app.geo?.current();
    return this.app.send({ incident: this.id, ...cmd, ...(position && cmd.type !== "checkin.end" ? { position } : {}) });
  }

  update(state, pending) {
    this.renderBanner(state);
    this.renderControls(state, pending);
  }

  renderBanner(state) {
    const app = this.app;
    const alarms = openAlarms(state);
    this.banner.hidden = !alarms.length;
    setChildren(
      this.banner,
      alarms.map((c) => {
        const duress = c.status === "duress";
        const own = c.user === app.me.id;
        const resolve =
          app.coordinator && !own
            ? h(
                "button",
                {
                  type: "button",
                  class: "resolve",
                  on: { click: () => app.send({ type: "checkin.resolve", incident: this.id, user: c.user }) },
                },
                "Resolve",
              )
            : own && !duress
              ? h("button", { type: "button", class: "primary", on: { click: () => this.send({ type: "checkin.ok" }) } }, "I'm OK")
              : null;
        return h(
          "div",
          { class: ["alarm", duress ? "duress" : "missed"], "data-user": c.user },
          h("strong", null, duress ? "DURESS" : "MISSED CHECK-IN"),
          ` ${c.name} (${app.orgName(c.org)}) · ${clock(c.alarm?.ts ?? c.started)} · ${positionText(c)}`,
          resolve,
        );
      }),
    );
  }

  renderControls(state, pending) {
    const app = this.app;
    const phone = app.layout === "phone" && state.status !== "closed";
    this.controls.hidden = !phone;
    if (!phone) return;
    const mine = [...state.checkins.values()].find((c) => c.user === app.me.id && state.openCheckins.get(c.user) === c.id);
    const queued = pending.some((i) => i.cmd.type?.startsWith("checkin."));
    const duress = h(
      "button",
      {
        type: "button",
        class: ["duress-button", Date.now() < this.armedUntil && "armed"],
        disabled: mine?.status === "duress",
        on: { click: () => this.duress() },
      },
      mine?.status === "duress" ? "Duress raised" : Date.now() < this.armedUntil ? "Tap again: DURESS" : "Duress",
    );
    let timer;
    if (mine?.status === "active" && mine.due) {
      timer = [
        h("span", { class: "checkin-due" }, `Check in by ${clock(mine.due)}`),
        h("button", { type: "button", class: "primary checkin-ok", on: { click: () => this.send({ type: "checkin.ok" }) } }, "I'm OK"),
        h("button", { type: "button", class: "link", on: { click: () => this.send({ type: "checkin.end" }) } }, "Stop"),
      ];
    } else if (!mine) {
      timer = [
        this.minutes,
        h(
          "button",
          {
            type: "button",
            class: "checkin-start",
            on: { click: () => this.send({ type: "checkin.start", interval_s: Number(this.minutes.value) * 60 }) },
          },
          "Start check-in timer",
        ),
      ];
    }
    setChildren(this.controls, timer, queued ? h("span", { class: "muted" }, "Sending…") : null, duress);
  }

  /** Two taps within a few seconds: a pocket does not raise an alarm, a person at once. */
  duress() {
    if (Date.now() < this.armedUntil) {
      this.armedUntil = 0;
      this.send({ type: "checkin.duress" });
    } else {
      this.armedUntil = Date.now() + DURESS_ARM_MS;
      setTimeout(() => this.app.schedule(), DURESS_ARM_MS + 50);
    }
    this.app.panes.get(this.id)?.markDirty();
    this.app.schedule();
  }
}
