// The TLP 2.0 badge and the redaction wording, shown wherever a label or a
// protected field appears: messages, tasks, the incident header and list,
// the timeline and the replay.

import { h } from "../dom.js";
import { TLP_MEANING, labelOf, tlpText, subjectRows } from "../labels.js";

/** "TLP:AMBER" in the TLP 2.0 colours on black; its meaning in the tooltip. */
export function tlpBadge(tlp) {
  const label = labelOf(tlp);
  return h(
    "span",
    {
      class: "tlp",
      "data-tlp": label,
      title: `${tlpText(label)}: ${TLP_MEANING[label]}`,
    },
    tlpText(label),
  );
}

/** "for: Nia Outreach, Lee Coordinator", for a RED message or task. */
export function recipientsLine(app, state, recipients, author) {
  const names = [...new Set([...(recipients || [])])].filter((u) => u !== author).map((u) => app.personName(state, u));
  if (!names.length) return null;
  return h("div", { class: "tlp-for" }, "for: ", names.join(", "));
}

/** The subject's fields as a definition list, the redacted ones saying so. */
export function subjectList(subject, { heading = "Person" } = {}) {
  const rows = subjectRows(subject);
  if (!rows) return null;
  return h(
    "dl",
    { class: "subject", "aria-label": heading },
    rows.map((r) => [
      h("dt", {}, r.label),
      h("dd", { class: r.redacted ? "redacted" : null, "data-field": r.key }, r.text),
    ]),
  );
}
