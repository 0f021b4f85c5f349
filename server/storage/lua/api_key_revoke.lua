-- Revoke an API key (the first revocation time is kept) and announce it, atomically.
-- KEYS[1] the key's hash
-- ARGV: key id, now_ms, channel
-- Returns 1, or 0 for an unknown key (nothing written).
local user = redis.call('HGET', KEYS[1], 'user')
if not user then return 0 end
redis.call('HSETNX', KEYS[1], 'revoked', ARGV[2])
redis.call('PUBLISH', ARGV[3], cmsgpack.pack({'key', user, ARGV[1], tonumber(ARGV[2])}))
return 1
