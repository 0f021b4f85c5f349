"""A Python client for Liaison: login, connect, negotiate, follow, post, resume.

    client = LiaisonClient("http://127.0.0.1:8080")
    await client.login("dispatch", "liaison-demo")
    await client.connect()
    await client.follow(incident_id)
    ack = await client.post(incident_id, "On my way")
    event = await client.next_event()

It keeps the last ``seq`` per followed incident, drops duplicates, notices
gaps and re-follows from its position after every reconnect, so a consumer
sees each event once and in order. Writes carry a client id and are retried
with the same id, so a retry is never stored twice.
"""

from liaison_client.client import CommandFailed, LiaisonClient
from liaison_client.modes import is_exercise, mode_of, written_note

__all__ = ["CommandFailed", "LiaisonClient", "is_exercise", "mode_of", "written_note"]
