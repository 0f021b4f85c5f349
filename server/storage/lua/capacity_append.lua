-- One capacity change (server/storage/redis_capacity.py): idempotency check,
-- per-organisation seq, global pos, the log entry and the current items, in
-- one step. KEYS: log, pos, seqs, ids, current(org), orgs.
-- ARGV: org, idempotency key, entry payload (msgpack), ts, then pairs of
-- item name and msgpack value ("" clears the item).
local seen = redis.call('HGET', KEYS[4], ARGV[2])
if seen then
  return {0, tonumber(seen)}
end
local pos = redis.call('INCR', KEYS[2])
local seq = redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
redis.call('XADD', KEYS[1], pos .. '-0', 'o', ARGV[1], 's', seq, 'p', ARGV[3])
redis.call('HSET', KEYS[4], ARGV[2], pos)
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[5], ARGV[i])
  else
    redis.call('HSET', KEYS[5], ARGV[i], seq .. ' ' .. ARGV[4] .. ' ' .. ARGV[i + 1])
  end
end
redis.call('SADD', KEYS[6], ARGV[1])
return {pos, seq}
