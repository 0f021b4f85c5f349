// Post-incident reviews (SPEC 8.12) in the client's projection: the latest
// review of each organisation that this client received, and which follow-up
// actions were marked done. The same shape as the server's view
// (`reviews`, `open_actions`), so the differential test compares them.

export function applyReview(s, env, b) {
  const org = b.org || env.actor.org;
  s.reviews.set(org, {
    seq: env.seq,
    org,
    author: { user: env.actor.user, name: env.actor.name },
    ts: env.ts,
    tlp: b.tlp ?? "AMBER",
    visibility: env.visibility,
    went_well: b.went_well ?? null,
    went_badly: b.went_badly ?? null,
    rating: b.rating ?? null,
    actions: (b.actions || []).map((a) => ({ id: a.id, text: a.text, owner: a.owner, due: a.due })),
    supersedes: b.supersedes ?? null,
  });
}

export function applyActionDone(s, env, b) {
  if (typeof b.action_id === "string" && !s.actionsDone.has(b.action_id)) {
    s.actionsDone.set(b.action_id, { ts: env.ts, by: env.actor.user });
  }
}

/** The reviews (by organisation) and their open actions, soonest due first. */
export function reviewsView(s, nowMs = Date.now()) {
  const reviews = [];
  const open = [];
  for (const r of s.reviews.values()) {
    const actions = r.actions.map((a) => {
      const done = s.actionsDone.get(a.id);
      return {
        ...a,
        done: !!done,
        done_ts: done ? done.ts : null,
        done_by: done ? done.by : null,
        overdue: !done && a.due * 1000 < nowMs,
      };
    });
    reviews.push({ ...r, actions });
    for (const a of actions) if (!a.done) open.push({ ...a, review: r.seq, org: r.org });
  }
  open.sort((a, b) => a.due - b.due || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { reviews, open_actions: open };
}
