-- Store a new API key and announce it on the revocation feed, atomically (api_keys.py).
-- KEYS[1] the key's hash, KEYS[2] the set of ids
-- ARGV: record (msgpack), key id, user, now_ms, channel
-- Returns 1, or 0 if the id is taken (nothing written).
if redis.call('HSETNX', KEYS[1], 'record', ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'user', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[5], cmsgpack.pack({'key', ARGV[3], ARGV[2], tonumber(ARGV[4])}))
return 1
