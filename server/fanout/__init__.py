"""Fan-out: live delivery of committed events, and presence. Nothing here is the truth.

base.py      Broker, Listener, History and Presence: the interfaces and their contracts
memory.py    MemoryBroker: in-process, single node only (the embedded default)
redis.py     RedisBroker: per-incident pub/sub channels, supervised, gaps filled from the log
presence.py  MemoryPresence and RedisPresence
"""
