-- Rotate a refresh token of one session family, atomically (sessions.py).
-- KEYS[1] family hash, KEYS[2] its used-hash set, KEYS[3] the ended zset
-- ARGV: old_hash, new_hash, now_ms, idle_ms, max_age_ms, family, channel
-- Returns {status, user}; status ok | unknown | expired | reused.
local fam = redis.call('HMGET', KEYS[1], 'user', 'current', 'created', 'last')
if not fam[1] then return {'unknown', ''} end
local user, now = fam[1], tonumber(ARGV[3])
local function finish(status)
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZADD', KEYS[3], now, ARGV[6])
  redis.call('PUBLISH', ARGV[7], cmsgpack.pack({'end', user, ARGV[6], now}))
  return {status, user}
end
if ARGV[1] ~= fam[2] then
  if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return finish('reused') end
  return {'unknown', ''}
end
if now - tonumber(fam[4]) > tonumber(ARGV[4]) or now - tonumber(fam[3]) > tonumber(ARGV[5]) then
  return finish('expired')
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'current', ARGV[2], 'last', now)
return {'ok', user}
