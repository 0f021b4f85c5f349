"""The pure domain: principals, events, the incident projection and the rules.

    model.py       roles, principals, organisations
    events.py      EventDraft (what a command decides) and StoredEvent (what a log holds)
    chain.py       the per-incident hash chain (tamper evidence, offline verification)
    visibility.py  who may see an incident and each event
    incident.py    IncidentState: the projection of one incident's log
    decide.py      command + state -> event draft, or a typed refusal

Nothing here imports aiohttp, socket.io, SQLite or Redis.
"""
