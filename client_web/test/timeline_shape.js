// The web client's projection in the common shape of the differential test
// (the Python twin, with the reasons for each exclusion, is
// tests/timeline_shape.py): every field of the server's incident view except
// `online` (presence), responders' `position_age_s` and actions' `overdue`
// (the clock). `updated`
// is the ts of the last event the organisation may see (SPEC 18), which its
// envelopes tell it: placeholders carry no ts and do not move it.
// Client-only fields (`rev`, `cid`, `people`, `restricted`) are not views'.

import { apply, checkinList, emptyState } from "../src/projection.js";
import { reviewsView } from "../src/reviews.js";

/** Fold envelopes (seq order, placeholders included) the way the live client does. */
export function fold(id, envelopes) {
  const state = emptyState(id);
  for (const env of envelopes) {
    if (env.seq <= state.seq) continue;
    if (env.seq !== state.seq + 1) throw new Error(`gap before seq ${env.seq}`);
    apply(state, env);
  }
  return state;
}

const byOrg = (a, b) => (a.org < b.org ? -1 : a.org > b.org ? 1 : 0);
const withoutOverdue = ({ overdue, ...rest }) => rest;

export function shapeOfState(s) {
  const rv = reviewsView(s);
  const message = (m) => ({
    seq: m.seq,
    tlp: m.tlp,
    recipients: m.recipients,
    author: { user: m.author.user, org: m.author.org, name: m.author.name },
    text: m.text,
    ts: m.ts,
    visibility: m.visibility,
    urgent: m.urgent,
    reply_to: m.reply_to,
    mentions: m.mentions,
    edited_seq: m.edited_seq,
    retracted: m.retracted,
    acks: m.acks,
    receipts: m.receipts,
    escalations: m.escalations,
  });
  const task = (t) => ({
    id: t.id,
    title: t.title,
    details: t.details,
    tlp: t.tlp,
    recipients: t.recipients,
    subject: t.subject,
    created_by: t.created_by,
    visibility: t.visibility,
    status: t.status,
    assignee: { org: t.assignee.org, user: t.assignee.user },
    note: t.note,
    updated_seq: t.updated_seq,
    updated: t.updated,
    due: t.due,
    receipts: t.receipts,
    escalations: t.escalations,
  });
  const responder = (r) => ({
    user: r.user,
    org: r.org,
    name: r.name,
    status: r.status,
    status_ts: r.status_ts,
    position: r.position,
    position_ts: r.position_ts,
  });
  return {
    id: s.id,
    epoch: s.epoch,
    seq: s.seq,
    title: s.title,
    external_ref: s.external_ref,
    category: s.category,
    priority: s.priority,
    status: s.status,
    location: s.location,
    orgs: s.orgs,
    lead_org: s.lead_org,
    liaisons: s.liaisons,
    tlp: s.tlp,
    created_by: s.created_by,
    created: s.created,
    updated: s.updated,
    description: s.description,
    needs: s.needs,
    subject: s.subject,
    source: s.source,
    status_history: s.status_history,
    messages: [...s.messages.values()].sort((a, b) => a.seq - b.seq).map(message),
    tasks: [...s.tasks.values()].sort((a, b) => a.id - b.id).map(task),
    responders: [...s.responders.values()]
      .sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0))
      .map(responder),
    reviews: rv.reviews.sort(byOrg).map((r) => ({ ...r, actions: r.actions.map(withoutOverdue) })),
    open_actions: rv.open_actions.map(withoutOverdue),
    checkins: checkinList(s).map(({ ...c }) => c),
    capacity_requests: [...s.capacityRequests.values()].map((r) => ({ ...r })),
  };
}
