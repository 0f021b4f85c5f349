// The task board: create, assign to an organisation or a person, accept or
// decline, start, complete, cancel. Buttons follow the protocol's state
// machine (SPEC 8.9); the server has the last word.

import { h, reconcile, setText } from "../dom.js";
import { taskList, taskActions } from "../projection.js";
import { TASK_LABEL, TASK_ACTION_LABEL, ago, clock, label } from "../format.js";
import { TASK_FINAL } from "../protocol.js";
import { escalationLine, receiptLine } from "./safety.js";
import { assigneeText } from "./describe.js";
import { visibilityText } from "./channel.js";
import { TLP_LABELS, labelOf, powers, tlpText, withLabel } from "../labels.js";
import { tlpBadge, recipientsLine, subjectList } from "./tlp.js";
import { showSuggestions } from "./suggest.js";

const COLUMNS = [
  ["todo", "To do", new Set(["open", "assigned", "declined"])],
  ["doing", "Under way", new Set(["accepted", "in_progress"])],
  ["done", "Done", new Set(["completed", "cancelled"])],
];

/**
 * Who a task may go to: anyone taking part, or, for a partner
 * organisation's coordinator, its own organisation and people (SPEC 8.0).
 */
function assigneeOptions(app, state) {
  const options = [h("option", { value: "" }, "Choose who…")];
  const may = powers(state, app.me);
  const orgs = state.orgs.filter((o) => may.assignTo({ org: o }));
  options.push(
    h(
      "optgroup",
      { label: may.lead ? "Organisations" : "Your organisation (the lead assigns to others)" },
      orgs.map((o) => h("option", { value: "org:" + o }, app.orgName(o))),
    ),
  );
  const people = [...state.people.entries()].filter(([, p]) => orgs.includes(p.org));
  for (const [id, p] of app.people) {
    if (orgs.includes(p.org) && !state.people.has(id)) people.push([id, p]);
  }
  if (people.length) {
    options.push(
      h(
        "optgroup",
        { label: "People" },
        people
          .sort((a, b) => a[1].name.localeCompare(b[1].name))
          .map(([id, p]) => h("option", { value: `user:${p.org}:${id}` }, `${p.name} (${app.orgName(p.org)})`)),
      ),
    );
  }
  return options;
}

function parseAssignee(value) {
  if (value.startsWith("org:")) return { org: value.slice(4) };
  if (value.startsWith("user:")) {
    const [, org, ...rest] = value.split(":");
    return { org, user: rest.join(":") };
  }
  return null;
}

export class TaskBoard {
  constructor(app, incidentId, { readOnly = false } = {}) {
    this.app = app;
    this.id = incidentId;
    this.readOnly = readOnly;
    this.assigning = null;
    this.cols = new Map();
    const board = h("div", { class: "board" });
    this.board = board;
    for (const [key, title] of COLUMNS) {
      const count = h("span", { class: "count" });
      const ul = h("ul", { class: "task-list", "aria-label": title });
      board.append(h("div", { class: "col", "data-col": key }, h("h4", {}, title, " ", count), ul));
      this.cols.set(key, { ul, count });
    }
    this.newButton = null;
    this.form = null;
    const head = h("div", { class: "section-head" }, h("h3", {}, "Tasks"));
    if (!readOnly && app.coordinator) {
      this.newButton = h(
        "button",
        { type: "button", class: "primary", on: { click: () => this.openNewTask() } },
        "New task",
      );
      head.append(this.newButton);
      this.form = this.buildForm();
    }
    this.empty = h("p", { class: "empty" }, "No tasks yet.");
    this.el = h("section", { class: "tasks", "aria-label": "Tasks" }, head, this.form, this.empty, board);
  }

  buildForm() {
    this.title = h("input", { name: "title", required: true, maxlength: 300, "aria-label": "Task title", placeholder: "What needs doing" });
    this.details = h("textarea", { name: "details", rows: 2, "aria-label": "Details", placeholder: "Details (optional)" });
    this.assignee = h("select", { name: "assignee", "aria-label": "Assign to" });
    this.taskVisibility = h("select", { name: "visibility", "aria-label": "Who may see the task" });
    this.taskLabel = h("select", { name: "tlp", class: "task-tlp-pick", "aria-label": "Task label (TLP)" });
    this.taskError = h("p", { class: "task-form-warning", role: "alert", hidden: true });
    this.suggestions = h("div", { class: "task-suggestions" });
    this.due = h(
      "select",
      { name: "due", class: "task-due-pick", "aria-label": "Due in" },
      [
        ["", "No due time"],
        ["1800", "Due in 30 min"],
        ["3600", "Due in 1 h"],
        ["7200", "Due in 2 h"],
        ["14400", "Due in 4 h"],
      ].map(([value, text]) => h("option", { value }, text)),
    );
    const form = h(
      "form",
      {
        class: "task-form",
        hidden: true,
        "aria-label": "New task",
        on: {
          submit: async (ev) => {
            ev.preventDefault();
            const state = this.app.states.get(this.id);
            if (!state || !this.title.value.trim()) return;
            const cmd = { type: "task.create", incident: this.id, title: this.title.value.trim() };
            if (this.details.value.trim()) cmd.details = this.details.value.trim();
            const who = parseAssignee(this.assignee.value);
            if (who) cmd.assignee = who;
            if (this.due.value) cmd.due_in_s = Number(this.due.value);
            const built = composeTask(cmd, {
              tlp: this.taskLabel.value || labelOf(state.tlp),
              visibility: this.taskVisibility.value ? [this.taskVisibility.value] : null,
            });
            this.taskError.hidden = !built.problem;
            if (built.problem) {
              setText(this.taskError, `Not created: ${built.problem}`);
              return;
            }
            const item = await this.app.send(built.cmd);
            if (item) {
              form.reset();
              form.hidden = true;
              this.newButton?.focus();
            }
          },
          keydown: (ev) => {
            if (ev.key === "Escape") {
              form.hidden = true;
              this.newButton?.focus();
            }
          },
        },
      },
      this.title,
      this.details,
      h("div", { class: "form-row" }, this.assignee, this.taskLabel, this.taskVisibility, this.due),
      this.suggestions,
      this.taskError,
      h(
        "div",
        { class: "form-row" },
        h("button", { type: "submit", class: "primary" }, "Create task"),
        h("button", { type: "button", on: { click: () => (form.hidden = true) } }, "Cancel"),
      ),
    );
    return form;
  }

  openNewTask() {
    if (!this.form) return;
    const state = this.app.states.get(this.id);
    if (state) {
      this.assignee.replaceChildren(...assigneeOptions(this.app, state));
      this.taskVisibility.replaceChildren(
        h("option", { value: "" }, "Everyone on this incident"),
        h("option", { value: this.app.me.org }, `${this.app.orgName(this.app.me.org)} only`),
      );
      const incidentTlp = labelOf(state.tlp);
      this.taskLabel.replaceChildren(
        ...TLP_LABELS.map((l) =>
          h("option", { value: l }, l === incidentTlp ? `${tlpText(l)} (incident's label)` : tlpText(l)),
        ),
      );
      this.taskLabel.value = incidentTlp;
      this.taskError.hidden = true;
      showSuggestions(this.app, this.id, this.suggestions, this.assignee);
    }
    this.form.hidden = false;
    this.title.focus();
  }

  update(state, pending = [], now = Date.now()) {
    if (!state) return;
    this.now = now;
    const tasks = taskList(state);
    const byTask = new Map();
    for (const item of pending) {
      if (item.cmd.type.startsWith("task.") && item.cmd.task) byTask.set(item.cmd.task, item);
    }
    const creating = pending.filter((i) => i.cmd.type === "task.create");
    const seen = new Set();
    for (const [key, , statuses] of COLUMNS) {
      const items = tasks.filter((t) => statuses.has(t.status));
      if (key === "todo") items.push(...creating.map((i) => ({ pendingCreate: i })));
      const { ul, count } = this.cols.get(key);
      setText(count, items.length ? `(${items.length})` : "");
      reconcile(
        ul,
        items,
        (t) => (t.pendingCreate ? "p:" + t.pendingCreate.id : t.id),
        (t) =>
          t.pendingCreate
            ? `p|${t.pendingCreate.state}`
            : `${t.rev}|${byTask.get(t.id)?.id || ""}|${byTask.get(t.id)?.state || ""}|${this.assigning === t.id}|${this.noting?.task === t.id ? this.noting.action : ""}|${this.app.orgs.size}|${Math.floor(now / 30000)}`,
        (t) => (t.pendingCreate ? this.renderPendingCreate(t.pendingCreate) : this.renderTask(state, t, byTask.get(t.id))),
      );
      items.forEach((t) => seen.add(t));
    }
    this.empty.hidden = seen.size > 0;
    this.board.hidden = seen.size === 0;
  }

  renderPendingCreate(item) {
    const online = this.app.sync?.status === "online";
    return h(
      "li",
      { class: "task pending", "data-cid": item.id },
      h("div", { class: "task-title" }, item.cmd.title),
      h("div", { class: "pending-status" }, online ? "Creating…" : "Queued on this device"),
    );
  }

  renderTask(state, t, pending) {
    const app = this.app;
    const restricted = labelOf(t.tlp) === "RED" ? null : visibilityText(app, t.visibility);
    const parts = [
      h("div", { class: "task-title" }, h("span", { class: "task-id" }, `#${t.id}`), " ", tlpBadge(t.tlp), " ", t.title),
      h(
        "div",
        { class: "task-meta" },
        h("span", { class: ["status", "ts-" + t.status] }, label(TASK_LABEL, t.status)),
        " ",
        h("span", { class: "assignee" }, t.assignee.org || t.assignee.user ? `→ ${assigneeText(app, state, t.assignee)}` : "Not assigned"),
        " ",
        h("time", { class: "muted" }, ago(t.updated, this.now)),
      ),
    ];
    if (restricted) parts.push(h("div", { class: "tag restricted-tag" }, `Restricted · ${restricted}`));
    if (labelOf(t.tlp) === "RED") parts.push(recipientsLine(app, state, t.recipients, t.created_by));
    if (t.subject) parts.push(subjectList(t.subject, { heading: "The person this task is about" }));
    if (t.details) parts.push(h("div", { class: "task-details" }, t.details));
    if (t.note) parts.push(h("div", { class: "task-note" }, `Note: ${t.note}`));
    if (t.due) parts.push(h("div", { class: ["task-due", t.due < this.now && !TASK_FINAL.has(t.status) && "overdue"] }, `Due ${clock(t.due)}`));
    const receipts = receiptLine(t, t.accepted_ts ? { [t.assignee.user || "org"]: t.accepted_ts } : {});
    if (receipts) parts.push(h("div", { class: "receipts" }, receipts));
    const escalated = escalationLine(app, t);
    if (escalated) parts.push(h("div", { class: "escalated" }, escalated));
    if (pending) {
      const verb = TASK_ACTION_LABEL[pending.cmd.type] || pending.cmd.type;
      parts.push(
        h(
          "div",
          { class: "pending-status" },
          app.sync?.status === "online" ? `${verb}: sending…` : `${verb}: queued on this device`,
        ),
      );
    } else if (!this.readOnly) {
      const may = powers(state, app.me);
      const creatorOrg = state.people.get(t.created_by)?.org ?? null;
      // A partner's coordinator cancels only what its organisation created,
      // and reassigns only within it (SPEC 8.0); the server has the last word.
      const actions = taskActions(t, app.me).filter((a) => a !== "task.cancel" || may.cancelTask(t, creatorOrg));
      if (actions.length) {
        parts.push(
          h(
            "div",
            { class: "task-actions" },
            actions.map((a) =>
              h(
                "button",
                {
                  type: "button",
                  class: ["task-action", a === "task.accept" || a === "task.complete" ? "primary" : "", a === "task.cancel" || a === "task.decline" ? "danger" : ""],
                  "data-action": a,
                  on: { click: () => this.act(t, a) },
                },
                TASK_ACTION_LABEL[a],
              ),
            ),
          ),
        );
      }
      if (this.assigning === t.id) parts.push(this.assignForm(state, t));
      if (this.noting?.task === t.id) parts.push(this.noteForm(t, this.noting.action));
    }
    return h(
      "li",
      { class: ["task", "st-" + t.status], "data-task": t.id, "data-status": t.status, "data-tlp": labelOf(t.tlp) },
      parts,
    );
  }

  assignForm(state, t) {
    const select = h("select", { "aria-label": "Assign to" }, assigneeOptions(this.app, state));
    return h(
      "form",
      {
        class: "assign-form",
        on: {
          submit: (ev) => {
            ev.preventDefault();
            const who = parseAssignee(select.value);
            if (!who) return;
            this.assigning = null;
            this.app.send({ type: "task.assign", incident: this.id, task: t.id, assignee: who });
          },
        },
      },
      select,
      h("button", { type: "submit", class: "primary" }, "Assign"),
      h(
        "button",
        {
          type: "button",
          on: {
            click: () => {
              this.assigning = null;
              this.app.schedule();
              this.app.panes.get(this.id)?.markDirty();
            },
          },
        },
        "Cancel",
      ),
    );
  }

  act(t, action) {
    if (action === "task.assign" || action === "task.decline" || action === "task.cancel") {
      // These ask for a little more first: who, or why (optional).
      this.assigning = action === "task.assign" ? t.id : null;
      this.noting = action === "task.assign" ? null : { task: t.id, action };
      this.app.panes.get(this.id)?.markDirty();
      this.app.schedule();
      return;
    }
    this.app.send({ type: action, incident: this.id, task: t.id });
  }

  noteForm(t, action) {
    const input = h("input", {
      class: "task-note-input",
      maxlength: 8000,
      "aria-label": action === "task.decline" ? "Why decline (optional)" : "Why cancel (optional)",
      placeholder: action === "task.decline" ? "Why decline? (optional, everyone on the task sees it)" : "Why cancel? (optional)",
    });
    const done = () => {
      this.noting = null;
      this.app.panes.get(this.id)?.markDirty();
      this.app.schedule();
    };
    requestAnimationFrame(() => input.focus());
    return h(
      "form",
      {
        class: "assign-form",
        on: {
          submit: (ev) => {
            ev.preventDefault();
            const cmd = { type: action, incident: this.id, task: t.id };
            if (input.value.trim()) cmd.note = input.value.trim();
            done();
            this.app.send(cmd);
          },
          keydown: (ev) => {
            if (ev.key === "Escape") done();
          },
        },
      },
      input,
      h("button", { type: "submit", class: "danger" }, action === "task.decline" ? "Decline task" : "Cancel task"),
      h("button", { type: "button", on: { click: done } }, "Keep it"),
    );
  }
}

/**
 * A new task's command with its label (SPEC 8.9, 9.4), or why it cannot be
 * sent: {cmd} or {problem}. AMBER+STRICT names its organisations; a RED task
 * goes to one named person, who is its recipient.
 */
export function composeTask(cmd, { tlp, visibility }) {
  if (tlp === "AMBER+STRICT" && !visibility?.length) {
    return { problem: "TLP:AMBER+STRICT is for named organisations only: choose who may see the task." };
  }
  if (tlp === "RED") {
    const user = cmd.assignee?.user;
    if (!user) return { problem: "A TLP:RED task is for one named person: assign it to a person." };
    return { cmd: withLabel(cmd, { tlp, recipients: [user] }) };
  }
  return { cmd: withLabel(cmd, { tlp, visibility }) };
}
