"""Durable storage behind interfaces.

base.py             EventLog (append with seq, read a range, heads, the incident
                    index) and its guarantees; Deliver, how a log hands its
                    commits to the broker
sqlite.py           SqliteEventLog: the embedded default (WAL, group commit)
redis_log.py        RedisEventLog and RedisLogReader: logs in Redis Streams
group_commit.py     the writer queue both logs share
codec.py            StoredEvent <-> msgpack (Redis log and pub/sub)
directory.py        DirectoryStorage (organisations, users) and its SQLite form
redis_directory.py  RedisDirectoryStorage
secret.py           SecretStore: the token secret (configured, file, Redis)
sessions.py         SessionStore (refresh families, the revocation feed), SQLite
redis_sessions.py   RedisSessionStore
api_keys.py         ApiKeyStore (bots' keys, announced on the session feed), SQLite
redis_api_keys.py   RedisApiKeyStore
redis_keys.py       every Redis key and channel
redis_connect.py    every Redis connection: one server, or a Sentinel-watched master
redis_replicas.py   ReplicaWait: acks after WAIT/WAITAOF (LIAISON_REDIS_MIN_REPLICAS)

Wired together, with server/fanout/, by server/backends.py.
"""
