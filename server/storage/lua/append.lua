-- Append a run of consecutive events to one incident's log, atomically.
--
-- The caller computed seq, timestamps and the hash chain (Redis Lua has no
-- sha256) from the head it last saw; this script is the compare-and-set that
-- makes that safe across nodes: it appends only if the head is still what the
-- caller assumed and none of the client ids was used, then moves the head and
-- publishes, all in one step, so the fan-out order is the seq order.
--
-- KEYS[1] log stream   KEYS[2] head hash   KEYS[3] idempotency hash
-- KEYS[4] feed stream  KEYS[5] feed position counter (server/storage/feed.py:
--         one entry per run, in commit order across incidents and nodes)
-- KEYS[6] the incident's tombstone (EventLog.archive): a creation of an
--         archived incident is a retry of the original (its id comes from the
--         client id) and never starts it again (SPEC 12, 25.4)
-- ARGV[1] expected head seq   ARGV[2] expected head hash
-- ARGV[3] new head seq   ARGV[4] new head hash   ARGV[5] new head ts
-- ARGV[6] epoch (set only when the log is created, else "")
-- ARGV[7] channel ("": do not publish; the durable writer publishes after
--         WAIT, redis_replicas.py)   ARGV[8] publish payload (msgpack array of events)
-- ARGV[9..] triples: idempotency field, seq, event (msgpack)
--
-- Returns {"ok"} | {"moved", head seq, head hash} | {"dup", idempotency field}
--         | {"archived"}

local head = redis.call('HMGET', KEYS[2], 'seq', 'hash')
local seq = head[1] and tonumber(head[1]) or 0
local hash = head[2] or '0000000000000000000000000000000000000000000000000000000000000000'
if seq ~= tonumber(ARGV[1]) or hash ~= ARGV[2] then
  return {'moved', tostring(seq), hash}
end
if ARGV[6] == '' and seq == 0 then
  return {'moved', '0', hash}  -- no such log: only a creation may start one
end
if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then
  return {'archived'}
end
for i = 9, #ARGV, 3 do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then
    return {'dup', ARGV[i]}
  end
end
for i = 9, #ARGV, 3 do
  redis.call('XADD', KEYS[1], ARGV[i + 1] .. '-0', 'e', ARGV[i + 2])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[2], 'epoch', ARGV[6])
end
redis.call('HSET', KEYS[2], 'seq', ARGV[3], 'hash', ARGV[4], 'ts', ARGV[5])
local pos = redis.call('INCR', KEYS[5])
redis.call('XADD', KEYS[4], pos .. '-0', 'k', KEYS[1], 'f', tonumber(ARGV[1]) + 1, 'l', ARGV[3])
if ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[7], ARGV[8])
end
return {'ok'}
