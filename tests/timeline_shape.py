"""The common shape in which the server's incident view and the web client's
projection are compared (the JS twin is ``client_web/test/timeline_shape.js``).

Compared: every field of ``IncidentState.view(org, now)`` (what
``GET /api/v1/incidents/{id}`` serves an organisation) that is a function of
the envelopes that organisation receives, which is all of them except:

* ``online``: presence, not part of the log (added by the REST layer);
* ``responders[].position_age_s``: depends on the reader's clock;
* ``overdue`` of review actions: the same.

Reviews are ordered by organisation (the server keeps them in order of each
organisation's first review of any visibility, the client of the first it sees).

Orders: messages by seq and tasks by id (as both sides keep them);
responders by user id, since their order is not specified (the server keeps
them in order of each responder's first event of any visibility, the client
in order of the first one it sees).
"""

from __future__ import annotations

from typing import Any

#: ``updated`` is compared: by SPEC 18 it is the ts of the last event the
#: organisation may see, which its envelopes tell it (it used to be the head's
#: time, of any visibility, which they must not and did not).
EXCLUDED_TOP = frozenset({"online"})
EXCLUDED_RESPONDER = frozenset({"position_age_s"})


def shape_of_view(view: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in view.items() if k not in EXCLUDED_TOP}
    out["messages"] = sorted(view["messages"], key=lambda m: m["seq"])
    out["tasks"] = sorted(view["tasks"], key=lambda t: t["id"])
    out["responders"] = sorted(
        ({k: v for k, v in r.items() if k not in EXCLUDED_RESPONDER} for r in view["responders"]),
        key=lambda r: r["user"],
    )
    out["reviews"] = sorted(
        (
            {**r, "actions": [_without_overdue(a) for a in r["actions"]]}
            for r in view.get("reviews", ())
        ),
        key=lambda r: r["org"],
    )
    out["open_actions"] = [_without_overdue(a) for a in view.get("open_actions", ())]
    return out


def _without_overdue(action: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in action.items() if k != "overdue"}
