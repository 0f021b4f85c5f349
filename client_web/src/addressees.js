// Whom an urgent message waits for. A message that mentions people or
// organisations is addressed to them: it waits for a mentioned person until
// they acknowledge it, for a mentioned organisation until one of its people
// does, and for everyone else (a supervisor watching) only until its
// addressees have answered. A message that mentions nobody is for everyone
// and waits for each person until they acknowledge it themselves.

/**
 * Whether urgent message `m` still waits for `me` ({id, org}).
 * `orgOf(user)` gives the organisation of someone who acknowledged.
 */
export function waitsFor(m, me, orgOf) {
  if (!m.urgent || m.retracted || m.author.user === me.id || me.id in m.acks) return false;
  const users = m.mentions?.users || [];
  const orgs = m.mentions?.orgs || [];
  if (!users.length && !orgs.length) return true;
  const ackers = Object.keys(m.acks);
  const orgAcked = (org) => ackers.some((u) => orgOf(u) === org);
  if (users.includes(me.id)) return true;
  if (orgs.includes(me.org)) return !orgAcked(me.org);
  // Not addressed to me: it waits (for my attention) while an addressee has not answered.
  return users.some((u) => !(u in m.acks)) || orgs.some((o) => !orgAcked(o));
}
