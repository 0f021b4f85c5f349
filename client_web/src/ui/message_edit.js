// Editing one's own message in place (message.edit, SPEC 8.7): the text in
// a box under the message, Save / Cancel; what is queued shows as
// "Saving edit…" until the server stores it. Everyone then sees "(edited)".

import { h } from "../dom.js";
import { codePoints } from "../protocol.js";

/** Re-render the pane of `channel` (its render skips unchanged panes). */
function refresh(channel) {
  channel.app.panes.get(channel.id)?.markDirty();
  channel.app.schedule();
}

/** The edit queued for message `seq`, newest last (or null). */
export function queuedEdit(pending, seq) {
  return pending.filter((i) => i.cmd.type === "message.edit" && i.cmd.message === seq).pop() || null;
}

/**
 * The editor for message `m` of `channel`: `channel.editing` = {seq, draft}
 * keeps the draft across re-renders.
 */
export function messageEditor(channel, m) {
  const app = channel.app;
  const editing = channel.editing;
  const stop = () => {
    channel.editing = null;
    refresh(channel);
  };
  const save = async () => {
    const text = box.value;
    if (!text.trim() || codePoints(text) > 8000) {
      box.focus();
      return;
    }
    if (text === m.text) return stop();
    channel.editing = null;
    refresh(channel);
    await app.send({ type: "message.edit", incident: channel.id, message: m.seq, text });
  };
  const box = h("textarea", {
    class: "edit-text",
    rows: 2,
    maxlength: 8000,
    "aria-label": "Edit your message",
    on: {
      input: () => (editing.draft = box.value),
      keydown: (ev) => {
        if (ev.key === "Escape") stop();
        else if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
          ev.preventDefault();
          save();
        }
      },
    },
  });
  box.value = editing.draft ?? m.text ?? "";
  requestAnimationFrame(() => box.isConnected && document.activeElement !== box && box.focus());
  return h(
    "form",
    { class: "msg-edit", on: { submit: (ev) => (ev.preventDefault(), save()) } },
    box,
    h(
      "div",
      { class: "msg-actions" },
      h("button", { type: "submit", class: "primary save-edit" }, "Save"),
      h("button", { type: "button", class: "link", on: { click: stop } }, "Cancel"),
    ),
  );
}

/** The "Edit" action of one's own message. */
export function editButton(channel, m) {
  return h(
    "button",
    {
      type: "button",
      class: "link edit-msg",
      on: {
        click: () => {
          channel.editing = { seq: m.seq, draft: m.text };
          refresh(channel);
        },
      },
    },
    "Edit",
  );
}
