"""The pure domain: principals, events, the incident projection and the rules.

    model.py       roles, principals, organisations
    directory.py   DirectoryView: what the rules need to know of organisations and users
    events.py      EventDraft (what a command decides) and StoredEvent (what a log
                   holds), its fields defined once; ``StoredEvent.visible_to`` says
                   who may see an event
    chain.py       the per-incident hash chain (tamper evidence, offline verification)
    incident.py    IncidentState: the projection of one incident's log, per
                   reader organisation (``participates``: who may see an incident)
    summary.py     incident summaries for the incident index, folded field by field
    decide.py      command + state -> event draft, or a typed refusal

Nothing here imports aiohttp, socket.io, SQLite or Redis.
"""
