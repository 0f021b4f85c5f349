// The incident channel: messages with author and organisation badge,
// mentions, replies, urgent messages with their acknowledgements, restricted
// notes marked as such, and what is still queued on this device.

import { h, reconcile, setText, setChildren } from "../dom.js";
import { messageList } from "../projection.js";
import { clock, initials } from "../format.js";
import { explain } from "../errors.js";
import { codePoints, mentionsOutside } from "../protocol.js";
import {
  TLP_LABELS,
  TLP_MEANING,
  checkLabelChoice,
  labelOf,
  recipientCandidates,
  redHeirs,
  tlpText,
  withLabel,
} from "../labels.js";
import { tlpBadge, recipientsLine } from "./tlp.js";
import { writtenTag } from "./modes.js";
import { escalationLine, receiptLine } from "./safety.js";
import { linkify } from "./linkify.js";
import { editButton, messageEditor, queuedEdit } from "./message_edit.js";

function clip(text, n) {
  const chars = [...String(text ?? "")];
  return chars.length > n ? chars.slice(0, n - 1).join("") + "…" : chars.join("");
}

export function orgBadge(app, org) {
  return h("span", { class: ["badge", "org", "kind-" + app.orgKind(org)], "data-org": org }, app.orgName(org));
}

export function visibilityText(app, visibility) {
  if (!visibility) return null;
  const names = visibility.map((o) => app.orgName(o));
  return names.length === 1 ? `${names[0]} only` : `Only ${names.join(" + ")}`;
}

export class Channel {
  constructor(app, incidentId, { readOnly = false } = {}) {
    this.app = app;
    this.id = incidentId;
    this.readOnly = readOnly;
    this.replyTo = null;
    this.mentions = { users: new Set(), orgs: new Set() };
    this.recipients = new Set();
    this.list = h("ol", { class: "messages", role: "log", "aria-label": "Channel", "aria-live": "polite" });
    this.pendingList = h("ol", { class: "messages pending-messages", "aria-label": "Not sent yet" });
    this.emptyNote = h("p", { class: "empty" }, "No messages yet.");
    this.scroller = h("div", { class: "channel-scroll" }, this.emptyNote, this.list, this.pendingList);
    this.el = h("section", { class: "channel", "aria-label": "Channel" }, this.scroller);
    if (!readOnly) this.buildComposer();
  }

  buildComposer() {
    const app = this.app;
    this.text = h("textarea", {
      class: "composer-text",
      rows: 2,
      "aria-label": "Message",
      placeholder: "Message to everyone on this incident",
      maxlength: 8000,
      on: {
        keydown: (ev) => {
          if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
            ev.preventDefault();
            this.submit();
          }
        },
        input: () => this.updateCounter(),
      },
    });
    this.urgent = h("input", { type: "checkbox", class: "urgent-box" });
    this.visibility = h("select", {
      class: "visibility",
      "aria-label": "Who may see it",
      on: {
        change: () => {
          this.updatePlaceholder();
          this.warnRestriction([]);
        },
      },
    });
    this.labelPick = h("select", {
      class: "tlp-pick",
      "aria-label": "Label (TLP)",
      title: "The message's TLP label: who may read it",
      on: { change: () => this.labelChanged() },
    });
    this.recipientPick = h("select", {
      class: "recipient-pick",
      "aria-label": "Who it is for (TLP:RED)",
      on: { change: () => this.addRecipient() },
    });
    this.recipientChips = h("span", { class: "recipient-chips" });
    this.recipientRow = h(
      "div",
      { class: "composer-recipients", hidden: true },
      h("span", { class: "composer-label" }, "For:"),
      this.recipientChips,
      this.recipientPick,
    );
    this.mentionPick = h("select", {
      class: "mention-pick",
      "aria-label": "Mention",
      on: { change: () => this.addMention() },
    });
    this.replyChip = h("div", { class: "reply-chip", hidden: true });
    this.mentionChips = h("div", { class: "mention-chips" });
    this.restrictionWarning = h("p", { class: "composer-warning", role: "alert", hidden: true });
    this.counter = h("span", { class: "counter", "aria-live": "polite" });
    this.sendButton = h("button", { type: "submit", class: "primary send" }, "Send");
    this.composer = h(
      "form",
      {
        class: "composer",
        "aria-label": "Write a message",
        on: {
          submit: (ev) => {
            ev.preventDefault();
            this.submit();
          },
        },
      },
      this.replyChip,
      this.mentionChips,
      this.recipientRow,
      this.restrictionWarning,
      h("div", { class: "composer-main" }, this.text, this.sendButton),
      h(
        "div",
        { class: "composer-row" },
        h("label", { class: "check urgent-label" }, this.urgent, " Urgent"),
        this.labelPick,
        this.visibility,
        this.mentionPick,
        this.counter,
      ),
    );
    this.el.append(this.composer);
    this.optionsKey = "";
    void app;
  }

  updateOptions(state) {
    const app = this.app;
    const key =
      state.orgs.join(",") + "|" + [...state.people.keys()].join(",") + "|" + app.orgs.size + "|" + app.people.size + "|" + state.tlp;
    if (key === this.optionsKey) return;
    this.optionsKey = key;
    this.incidentTlp = labelOf(state.tlp);
    const label = this.labelPick.value || this.incidentTlp;
    setChildren(
      this.labelPick,
      TLP_LABELS.map((l) =>
        h(
          "option",
          { value: l, title: TLP_MEANING[l] },
          l === this.incidentTlp ? `${tlpText(l)} (incident's label)` : tlpText(l),
        ),
      ),
    );
    this.labelPick.value = this.labelPick.dataset.chosen ? label : this.incidentTlp;
    this.candidates = recipientCandidates(state.orgs, app.me, state.people, app.people);
    setChildren(
      this.recipientPick,
      h("option", { value: "" }, this.candidates.length ? "Add a person…" : "Nobody else known on this incident yet"),
      this.candidates.map((p) => h("option", { value: p.id }, `${p.name} (${app.orgName(p.org)})`)),
    );
    this.labelChanged(false);
    const current = this.visibility.value;
    const mine = app.me.org;
    const others = state.orgs.filter((o) => o !== mine);
    setChildren(
      this.visibility,
      h("option", { value: "" }, "Everyone on this incident"),
      h("option", { value: mine }, `${app.orgName(mine)} only`),
      others.length > 1
        ? others.map((o) => h("option", { value: `${mine},${o}` }, `Only ${app.orgName(mine)} + ${app.orgName(o)}`))
        : null,
    );
    this.visibility.value = [...this.visibility.options].some((o) => o.value === current) ? current : "";
    const people = [...state.people.entries()].filter(([id]) => id !== app.me.id);
    setChildren(
      this.mentionPick,
      h("option", { value: "" }, "Mention…"),
      h(
        "optgroup",
        { label: "Organisations" },
        state.orgs.map((o) => h("option", { value: "org:" + o }, app.orgName(o))),
      ),
      people.length
        ? h(
            "optgroup",
            { label: "People" },
            people.map(([id, p]) => h("option", { value: "user:" + id }, `${p.name} (${app.orgName(p.org)})`)),
          )
        : null,
    );
    this.updatePlaceholder();
  }

  updatePlaceholder() {
    const v = this.visibility.value;
    const tlp = this.labelPick?.value;
    this.text.placeholder =
      tlp === "RED"
        ? "TLP:RED: only the people you name below read it"
        : v
          ? `Restricted note: ${visibilityText(this.app, v.split(","))}`
          : "Message to everyone on this incident";
    this.composer.classList.toggle("restricted", !!v || tlp === "RED");
  }

  /** The label picker changed (by the person, or a reply to a RED message). */
  labelChanged(byPerson = true) {
    const tlp = this.labelPick.value;
    if (byPerson) this.labelPick.dataset.chosen = "1";
    this.composer.dataset.tlp = tlp;
    this.composer.classList.toggle("tlp-red", tlp === "RED");
    this.recipientRow.hidden = tlp !== "RED";
    this.visibility.hidden = tlp === "RED";
    this.updatePlaceholder();
    if (byPerson) {
      this.warnRestriction([]);
      if (tlp === "RED" && !this.recipients.size) this.recipientPick.focus();
      if (tlp === "AMBER+STRICT" && !this.visibility.value) this.visibility.focus();
    }
  }

  addRecipient() {
    const id = this.recipientPick.value;
    this.recipientPick.value = "";
    if (!id) return;
    this.recipients.add(id);
    this.renderRecipientChips();
    this.warnRestriction([]);
    this.text.focus();
  }

  renderRecipientChips() {
    const state = this.app.states.get(this.id);
    this.recipientChips.replaceChildren(
      ...[...this.recipients].map((u) =>
        h(
          "button",
          {
            type: "button",
            class: "chip recipient-chip",
            "data-user": u,
            title: "Remove this person",
            on: {
              click: () => {
                this.recipients.delete(u);
                this.renderRecipientChips();
              },
            },
          },
          `${this.app.personName(state, u)} ×`,
        ),
      ),
    );
  }

  /** The label the composer would send: {tlp, visibility, recipients, mentions}. */
  labelChoice() {
    const tlp = this.labelPick.value || this.incidentTlp || "AMBER";
    return {
      tlp,
      visibility: this.visibility.value ? this.visibility.value.split(",") : null,
      recipients: tlp === "RED" ? [...this.recipients] : [],
      mentions: { users: [...this.mentions.users], orgs: [...this.mentions.orgs] },
    };
  }

  /** Say why the composer will not send this label, and keep the draft. */
  refuseLabel(choice) {
    const problem = checkLabelChoice(choice);
    if (!problem) return false;
    this.restrictionWarning.hidden = false;
    setText(this.restrictionWarning, `Not sent: ${problem.message}`);
    const focus = { visibility: this.visibility, recipients: this.recipientPick, tlp: this.labelPick }[problem.field];
    (focus || this.text).focus();
    return true;
  }

  updateCounter() {
    const n = codePoints(this.text.value);
    setText(this.counter, n > 7000 ? `${n} / 8000` : "");
  }

  addMention() {
    const value = this.mentionPick.value;
    this.mentionPick.value = "";
    if (!value) return;
    const [kind, id] = value.split(/:(.*)/s);
    (kind === "org" ? this.mentions.orgs : this.mentions.users).add(id);
    this.renderMentionChips();
    this.text.focus();
  }

  renderMentionChips() {
    const state = this.app.states.get(this.id);
    const chips = [];
    for (const o of this.mentions.orgs) chips.push(["orgs", o, this.app.orgName(o)]);
    for (const u of this.mentions.users) chips.push(["users", u, this.app.personName(state, u)]);
    this.mentionChips.replaceChildren(
      ...chips.map(([kind, id, name]) =>
        h(
          "button",
          {
            type: "button",
            class: "chip",
            title: "Remove this mention",
            on: {
              click: () => {
                this.mentions[kind].delete(id);
                this.renderMentionChips();
                this.warnRestriction([]);
              },
            },
          },
          `@${name} ×`,
        ),
      ),
    );
  }

  setReply(message) {
    this.replyTo = message ? message.seq : null;
    this.replyMessage = message || null;
    if (!message) {
      this.replyChip.hidden = true;
      this.replyChip.replaceChildren();
      return;
    }
    if (message.tlp === "RED" && this.labelPick) {
      // A reply to a RED message is RED for its author and recipients (SPEC 8.6).
      this.restoreLabel({ tlp: "RED", recipients: redHeirs(message, this.app.me) });
    }
    this.replyChip.hidden = false;
    this.replyChip.replaceChildren(
      h("span", {}, `Replying to ${message.author.name}: “${clip(message.text ?? "withdrawn", 60)}”`),
      h(
        "button",
        { type: "button", class: "chip", "aria-label": "Cancel reply", on: { click: () => this.setReply(null) } },
        "×",
      ),
    );
    this.text.focus();
  }

  /**
   * Queue the composer's message. The composer is cleared at once, before the
   * outbox write (which can take a while on a busy phone): the person may
   * already be typing the next message, and clearing after the write would
   * erase it. If the message is refused before sending, its text comes back
   * unless something new was typed meanwhile.
   */
  async submit() {
    const text = this.text.value;
    if (!text.trim()) {
      this.text.focus();
      return;
    }
    const choice = this.labelChoice();
    if (this.refuseLabel(choice)) return;
    if (choice.tlp !== "RED" && this.refuseRestrictedMentions()) return;
    const cmd = composeMessage({ incident: this.id, text, urgent: this.urgent.checked, replyTo: this.replyTo, ...choice });
    const draft = {
      urgent: this.urgent.checked,
      reply: this.replyMessage,
      users: [...this.mentions.users],
      orgs: [...this.mentions.orgs],
      tlp: choice.tlp,
      visibility: this.visibility.value,
      recipients: choice.recipients,
    };
    this.clearComposer();
    const item = await this.app.send(cmd);
    if (!item && !this.text.value) this.restoreComposer(text, draft);
  }

  /**
   * A restricted message that mentions an organisation outside the
   * restriction would reach it as a placeholder only (the server refuses it:
   * SPEC 8.6). Say so and keep the draft: the person widens "who may see it"
   * or removes the mention, deliberately.
   */
  refuseRestrictedMentions() {
    const visibility = this.visibility.value ? this.visibility.value.split(",") : null;
    const state = this.app.states.get(this.id);
    const mentions = { orgs: [...this.mentions.orgs], users: [...this.mentions.users] };
    const outside = mentionsOutside(visibility, mentions, (u) => state?.people.get(u)?.org ?? null);
    this.warnRestriction(outside, visibility);
    return outside.length > 0;
  }

  warnRestriction(outside, visibility = null) {
    this.restrictionWarning.hidden = outside.length === 0;
    if (!outside.length) return;
    const names = outside.map((o) => this.app.orgName(o)).join(", ");
    setText(
      this.restrictionWarning,
      `Not sent: ${names} ${outside.length > 1 ? "are" : "is"} mentioned, but this message is restricted ` +
        `(${visibilityText(this.app, visibility)}) and would not reach them. ` +
        "Choose who may see it, or remove the mention.",
    );
    this.visibility.focus();
  }

  clearComposer() {
    this.warnRestriction([]);
    this.text.value = "";
    this.urgent.checked = false;
    this.mentions.users.clear();
    this.mentions.orgs.clear();
    this.renderMentionChips();
    // The label and its recipients stay where they were set, like "who may
    // see it": a slip cannot send the next message wider than the last.
    this.setReply(null);
    this.updateCounter();
    this.stickToBottom = true;
    this.app.schedule();
  }

  /** Put a refused message back for correction. */
  restoreComposer(text, draft) {
    this.text.value = text;
    this.urgent.checked = draft.urgent;
    for (const u of draft.users) this.mentions.users.add(u);
    for (const o of draft.orgs) this.mentions.orgs.add(o);
    this.renderMentionChips();
    this.restoreLabel(draft);
    if (draft.reply) this.setReply(draft.reply);
    this.updateCounter();
    this.text.focus();
  }

  /** Put a label choice back ({tlp, visibility, recipients}), as it was sent. */
  restoreLabel({ tlp, visibility, recipients }) {
    if (!tlp) return;
    this.labelPick.value = tlp;
    this.labelPick.dataset.chosen = "1";
    if (typeof visibility === "string") {
      this.visibility.value = [...this.visibility.options].some((o) => o.value === visibility) ? visibility : "";
    }
    this.recipients = new Set(recipients || []);
    this.renderRecipientChips();
    this.labelChanged(false);
  }

  setClosed(closed) {
    if (!this.composer) return;
    this.composer.classList.toggle("closed", closed);
    this.text.disabled = closed;
    this.sendButton.disabled = closed;
  }

  focusComposer() {
    this.text?.focus();
  }

  toggleUrgent() {
    if (!this.urgent) return;
    this.urgent.checked = !this.urgent.checked;
    this.text.focus();
  }

  replyToLatest() {
    const state = this.app.states.get(this.id);
    const last = state && messageList(state).filter((m) => !m.retracted).pop();
    if (last) this.setReply(last);
  }

  acknowledgeOldest() {
    const state = this.app.states.get(this.id);
    if (!state) return;
    const me = this.app.me.id;
    const pending = new Set(this.app.pendingFor(this.id).filter((i) => i.cmd.type === "message.ack").map((i) => i.cmd.message));
    const m = messageList(state).find(
      (m) => m.urgent && !m.retracted && m.author.user !== me && !(me in m.acks) && !pending.has(m.seq),
    );
    if (m) this.app.send({ type: "message.ack", incident: this.id, message: m.seq });
    else this.app.toasts.info("No urgent message is waiting for your acknowledgement.");
  }

  // ----------------------------------------------------------------- render

  update(state, pending = []) {
    if (!state) return;
    if (!this.readOnly) this.updateOptions(state);
    const atBottom =
      this.stickToBottom ||
      this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 60;
    const messages = messageList(state);
    const pendingAcks = new Set(pending.filter((i) => i.cmd.type === "message.ack").map((i) => i.cmd.message));
    const me = this.app.me;
    reconcile(
      this.list,
      messages,
      (m) => m.seq,
      (m) =>
        `${m.rev}|${pendingAcks.has(m.seq)}|${this.app.orgs.size}|${m.reply_to ? state.messages.get(m.reply_to)?.rev : ""}` +
        `|${this.editing?.seq === m.seq}|${queuedEdit(pending, m.seq)?.id}|${this.app.contacts.isBot(m.author.user)}`,
      (m) => this.renderMessage(state, m, pendingAcks.has(m.seq), me, queuedEdit(pending, m.seq)),
    );
    const seenCids = new Set(messages.map((m) => m.cid).filter(Boolean));
    const posts = pending.filter((i) => i.cmd.type === "message.post" && !seenCids.has(i.id));
    reconcile(
      this.pendingList,
      posts,
      (i) => i.id,
      (i) => `${i.state}|${i.error?.code || ""}|${this.app.sync?.status}|${state.status}`,
      (i) => this.renderPending(i),
    );
    this.emptyNote.hidden = messages.length + posts.length > 0;
    if (!this.readOnly && document.visibilityState === "visible") this.app.receipts?.seen(state, messages);
    if (atBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
    this.stickToBottom = false;
  }

  renderMessage(state, m, ackPending, me, edit = null) {
    const app = this.app;
    const mentionsMe =
      m.mentions?.users?.includes(me.id) || m.mentions?.orgs?.includes(me.org);
    // A RED message names its people ("for: …"); its organisations are not its audience.
    const restricted = labelOf(m.tlp) === "RED" ? null : visibilityText(app, m.visibility);
    const mine = m.author.user === me.id;
    const head = h(
      "div",
      { class: "msg-head" },
      h("span", { class: "avatar", "aria-hidden": "true" }, initials(m.author.name)),
      h("span", { class: "author" }, m.author.name),
      app.contacts.isBot(m.author.user)
        ? h("span", { class: "tag bot-tag", title: "Posted by an integration (a bot), not a person" }, "BOT")
        : null,
      orgBadge(app, m.author.org),
      h("time", { datetime: new Date(m.ts).toISOString(), title: new Date(m.ts).toLocaleString() }, clock(m.ts)),
      writtenTag(m),
      tlpBadge(m.tlp),
      m.urgent ? h("span", { class: "tag urgent-tag" }, "URGENT") : null,
      restricted ? h("span", { class: "tag restricted-tag", title: "Restricted note: only these organisations see it" }, `Restricted · ${restricted}`) : null,
      mentionsMe ? h("span", { class: "tag mention-tag" }, "Mentions you") : null,
    );
    const parts = [head];
    if (labelOf(m.tlp) === "RED") parts.push(recipientsLine(app, state, m.recipients, m.author.user));
    if (m.reply_to) {
      const parent = state.messages.get(m.reply_to);
      parts.push(
        h(
          "div",
          { class: "reply-ref" },
          parent
            ? `↪ ${parent.author.name}: ${parent.retracted ? "(withdrawn)" : clip(parent.text, 80)}`
            : "↪ a message you cannot see",
        ),
      );
    }
    if (m.retracted) parts.push(h("div", { class: "msg-text withdrawn" }, "Message withdrawn."));
    else if (this.editing?.seq === m.seq && !this.readOnly) parts.push(messageEditor(this, m));
    else if (edit) parts.push(h("div", { class: "msg-text" }, linkify(edit.cmd.text), h("span", { class: "edited pending-note" }, edit.state === "failed" ? " (edit not saved)" : " (saving edit…)")));
    else parts.push(h("div", { class: "msg-text" }, linkify(m.text), m.edited_seq ? h("span", { class: "edited" }, " (edited)") : null));
    const mentionNames = [
      ...(m.mentions?.orgs || []).map((o) => app.orgName(o)),
      ...(m.mentions?.users || []).map((u) => app.personName(state, u)),
    ];
    if (mentionNames.length) parts.push(h("div", { class: "mentions" }, "@ " + mentionNames.join(", ")));
    if (m.urgent && !m.retracted) {
      const ackers = Object.keys(m.acks).map((u) => app.personName(state, u));
      const receipts = receiptLine(m, m.acks);
      const escalated = escalationLine(app, m);
      parts.push(
        h(
          "div",
          { class: ["acks", ackers.length ? "acked" : "waiting"] },
          ackers.length ? `Acknowledged by ${ackers.join(", ")}` : "Not acknowledged yet",
        ),
        receipts ? h("div", { class: "receipts", title: "Receipts: the first of each" }, receipts) : null,
        escalated ? h("div", { class: "escalated" }, escalated) : null,
      );
    }
    if (!this.readOnly && !m.retracted) {
      const actions = [];
      const needsMyAck = m.urgent && !mine && !(me.id in m.acks);
      if (needsMyAck) {
        actions.push(
          ackPending
            ? h("span", { class: "pending-note" }, "Acknowledging…")
            : h(
                "button",
                {
                  type: "button",
                  class: "primary ack",
                  on: { click: () => app.send({ type: "message.ack", incident: this.id, message: m.seq }) },
                },
                "Acknowledge",
              ),
        );
      }
      actions.push(h("button", { type: "button", class: "link", on: { click: () => this.setReply(m) } }, "Reply"));
      if (mine) {
        if (this.editing?.seq !== m.seq && !edit) actions.push(editButton(this, m));
        actions.push(
          h(
            "button",
            {
              type: "button",
              class: "link",
              on: {
                click: () => {
                  if (confirm("Withdraw this message? Everyone will see that it was withdrawn.")) {
                    app.send({ type: "message.retract", incident: this.id, message: m.seq });
                  }
                },
              },
            },
            "Withdraw",
          ),
        );
      }
      parts.push(h("div", { class: "msg-actions" }, actions));
    }
    return h(
      "li",
      {
        class: ["msg", m.urgent && "urgent", mine && "mine", app.contacts.isBot(m.author.user) && "bot", mentionsMe && "mentioned", (restricted || labelOf(m.tlp) === "RED") && "restricted", m.retracted && "retracted"],
        "data-seq": m.seq,
        "data-author": m.author.user,
        "data-tlp": labelOf(m.tlp),
      },
      parts,
    );
  }

  renderPending(item) {
    const app = this.app;
    const cmd = item.cmd;
    let status;
    if (item.state === "failed") {
      const why = app.refusal ? app.refusal(cmd, item.error) : explain(item.error, cmd.type);
      status = h(
        "div",
        { class: "pending-status failed", role: "alert" },
        `Not sent: ${why.title} ${why.action}`,
        h(
          "button",
          {
            type: "button",
            class: "link",
            on: {
              click: () => {
                this.text.value = cmd.text;
                this.restoreLabel({
                  tlp: cmd.tlp,
                  visibility: cmd.visibility ? cmd.visibility.join(",") : "",
                  recipients: cmd.recipients,
                });
                app.sync.drop(item.id);
                this.text.focus();
              },
            },
          },
          "Edit and send again",
        ),
        h("button", { type: "button", class: "link", on: { click: () => app.sync.drop(item.id) } }, "Discard"),
      );
    } else {
      const online = app.sync?.status === "online";
      status = h(
        "div",
        { class: "pending-status" },
        online ? "Sending…" : "Queued on this device — sent when the connection is back",
      );
    }
    const restricted = visibilityText(app, cmd.visibility ? [...new Set([app.me.org, ...cmd.visibility])].sort() : null);
    return h(
      "li",
      { class: ["msg", "mine", "pending", cmd.urgent && "urgent", restricted && "restricted"], "data-cid": item.id },
      h(
        "div",
        { class: "msg-head" },
        h("span", { class: "avatar", "aria-hidden": "true" }, initials(app.me.name)),
        h("span", { class: "author" }, app.me.name),
        orgBadge(app, app.me.org),
        h("time", {}, clock(item.created)),
        cmd.tlp ? tlpBadge(cmd.tlp) : null,
        cmd.urgent ? h("span", { class: "tag urgent-tag" }, "URGENT") : null,
        restricted ? h("span", { class: "tag restricted-tag" }, `Restricted · ${restricted}`) : null,
      ),
      cmd.tlp === "RED" ? recipientsLine(app, app.states.get(this.id), cmd.recipients, app.me.id) : null,
      h("div", { class: "msg-text" }, linkify(cmd.text)),
      status,
    );
  }
}

/**
 * The `message.post` the composer sends: its text, urgency, reply, mentions
 * and label (SPEC 8.6, 9.4). Built once; the outbox keeps it unchanged on
 * every retry.
 */
export function composeMessage({ incident, text, urgent, replyTo, tlp, visibility, recipients, mentions }) {
  const cmd = { type: "message.post", incident, text };
  if (urgent) cmd.urgent = true;
  if (replyTo) cmd.reply_to = replyTo;
  if (mentions && (mentions.users?.length || mentions.orgs?.length)) {
    cmd.mentions = { users: [...(mentions.users || [])], orgs: [...(mentions.orgs || [])] };
  }
  return withLabel(cmd, { tlp, visibility, recipients });
}
