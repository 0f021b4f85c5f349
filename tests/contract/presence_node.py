"""A node that claims presence and then only renews it: kill -9 it to see its claims expire.

Usage: python -m tests.contract.presence_node REDIS_URL TTL_S INCIDENT USER
Prints "joined" once its claim is in Redis.
"""

from __future__ import annotations

import asyncio
import sys

from server.backends import running
from server.settings import Settings


async def main(url: str, ttl_s: float, incident: str, user: str) -> None:
    settings = Settings(redis_url=url, node_id="doomed", presence_ttl_s=ttl_s)
    async with running(settings) as backends:
        await backends.presence.join(incident, user, "c-doomed")
        print("joined", flush=True)
        await asyncio.Event().wait()  # renewing, until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]))
