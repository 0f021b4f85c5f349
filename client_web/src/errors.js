// The server's typed errors (SPEC section 16) in words a stressed person
// understands, each with what to do next. The server's own `message` is for
// developers and is never parsed; it is shown only as a detail.

const FIELD_NAMES = {
  text: "the message",
  title: "the title",
  category: "the category",
  note: "the note",
  details: "the details",
  description: "the description",
  status: "the status",
  priority: "the priority",
  assignee: "who it is assigned to",
  "location.lat": "the latitude",
  "location.lon": "the longitude",
  lat: "the position",
  lon: "the position",
  visibility: "who may see it",
  tlp: "the label",
  recipients: "who it is for",
  mentions: "the mentions",
  username: "the user name",
  password: "the password",
};

/**
 * The sharing refusals (SPEC 8.0, 8.6, 9.4: `invalid` with these
 * `detail.field`s) say what to change, not only where.
 */
const SHARING_HELP = {
  tlp: {
    title: "was not accepted with that label.",
    action:
      "A reply or follow-up keeps the label of what it answers, and an incident is labelled CLEAR, GREEN or AMBER. Choose another label and send again.",
  },
  recipients: {
    title: "did not say who it is for.",
    action:
      "A TLP:RED message is for named people who take part in this incident: choose them (and only for TLP:RED), then send again.",
  },
  visibility: {
    title: "did not say which organisations may see it.",
    action:
      "TLP:AMBER+STRICT names its organisations, and a TLP:RED one reaches its recipients' organisations: choose who may see it and send again.",
  },
  mentions: {
    title: "mentions someone who could not read it.",
    action:
      "A restricted message may mention only those it is for (TLP:RED: only its recipients). Widen who may see it, or remove the mention.",
  },
};

const ACTIONS = {
  "message.post": "Your message",
  "message.edit": "Your edit",
  "message.retract": "Withdrawing the message",
  "message.ack": "Your acknowledgement",
  "task.create": "The new task",
  "task.assign": "The assignment",
  "task.accept": "Accepting the task",
  "task.decline": "Declining the task",
  "task.start": "Starting the task",
  "task.complete": "Completing the task",
  "task.cancel": "Cancelling the task",
  "responder.status": "Your status",
  "responder.position": "Your position",
  "incident.create": "The new incident",
  "incident.update": "The incident change",
  "incident.status": "The incident status",
};

/**
 * {title, action, retryable} for an error object {code, message, retryable, detail}.
 * `commandType` (optional) says what the person was doing.
 */
export function explain(error, commandType) {
  const code = error?.code || "internal";
  const what = ACTIONS[commandType] || "That";
  const field = error?.detail?.field;
  const fieldName = field ? FIELD_NAMES[field] || field.replace(/[._[\]]+/g, " ").trim() : null;
  switch (code) {
    case "unauthenticated":
      return {
        title: "Your session has ended.",
        action: "Sign in again. Anything you queued stays on this device and is sent afterwards.",
        retryable: false,
      };
    case "forbidden":
      return {
        title: `${what} is not allowed for your role or organisation.`,
        action:
          "Ask a dispatcher or your supervisor to do it, or to assign it to you. Only the organisation leading an incident changes it, adds organisations or assigns across them.",
        retryable: false,
      };
    case "not_found":
      return {
        title: `${what} could not be done: it is no longer available to you.`,
        action:
          "It may have been withdrawn, or your organisation is no longer on this incident. Check the incident list.",
        retryable: false,
      };
    case "conflict":
      return {
        title: `${what} was not needed or no longer fits: someone changed it first.`,
        action: "The screen shows the current state. Check it, then act again if it is still needed.",
        retryable: false,
      };
    case "invalid":
      if (SHARING_HELP[field]) {
        return { title: `${what} ${SHARING_HELP[field].title}`, action: SHARING_HELP[field].action, retryable: false };
      }
      return {
        title: fieldName
          ? `${what} was not accepted: check ${fieldName}.`
          : `${what} was not accepted as entered.`,
        action: "Correct it and send again.",
        retryable: false,
      };
    case "too_large":
      return {
        title: `${what} is too long to send.`,
        action: "Shorten it, or split it into several messages.",
        retryable: false,
      };
    case "rate_limited":
      return {
        title: "Too many actions at once.",
        action: "Nothing is lost: it is sent again automatically in a moment.",
        retryable: true,
      };
    case "shutdown":
      return {
        title: "The server is restarting.",
        action: "Nothing is lost: it is sent again automatically once reconnected.",
        retryable: true,
      };
    case "unavailable":
    case "internal":
    case "slow_consumer":
      return {
        title: "The server cannot save right now.",
        action: "Nothing is lost: it stays queued on this device and is retried automatically.",
        retryable: true,
      };
    case "outcome_unknown":
      return {
        title: "The server did not confirm that this was saved.",
        action:
          "Nothing is lost and nothing is saved twice: it stays queued on this device and is sent again until the server confirms it.",
        retryable: true,
      };
    case "archived":
      return {
        title: "This incident is archived.",
        action: "It was closed long ago and moved out of live storage. A supervisor can export it.",
        retryable: false,
      };
    case "out_of_range":
    case "resync_required":
      return {
        title: "This incident is being reloaded from the server.",
        action: "Wait a moment; nothing you did is lost.",
        retryable: false,
      };
    case "malformed":
    case "unknown_type":
    case "unsupported_version":
    case "unsupported_encoding":
      return {
        title: "This app does not match the server's version.",
        action: "Reload the page. If it keeps happening, call your administrator.",
        retryable: false,
      };
    case "network":
      return {
        title: "No connection to the server.",
        action: "What you do is kept on this device and sent when the connection is back.",
        retryable: true,
      };
    case "wrong_password":
      return {
        title: "Wrong user name or password.",
        action: "Check both and try again; ask your administrator if your account is locked.",
        retryable: false,
      };
    default:
      return error?.retryable
        ? {
            title: "Something went wrong on the server.",
            action: "It is retried automatically; nothing is lost.",
            retryable: true,
          }
        : {
            title: `${what} could not be done.`,
            action: "Check what you entered and try again; if it persists, call your administrator.",
            retryable: false,
          };
  }
}
