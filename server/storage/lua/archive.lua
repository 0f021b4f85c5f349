-- Take one incident out of hot storage (EventLog.archive), atomically within
-- its hash slot: remove its log, head, idempotency and summary, and leave the
-- tombstone, but only if the head is still the one the archive was written at.
--
-- KEYS[1] head hash   KEYS[2] log stream   KEYS[3] idempotency hash
-- KEYS[4] summary hash   KEYS[5] tombstone (string)
-- ARGV[1] expected head seq   ARGV[2] tombstone (JSON)
--
-- Returns 'done' | 'kept' (archived before; tombstone unchanged) |
--         'moved' (the head is not ARGV[1]) | 'absent' (neither log nor tombstone)

local seq = redis.call('HGET', KEYS[1], 'seq')
if not seq then
  if redis.call('EXISTS', KEYS[5]) == 1 then
    return 'kept'
  end
  return 'absent'
end
if tonumber(seq) ~= tonumber(ARGV[1]) then
  return 'moved'
end
-- UNLINK: a long stream is freed in the background, not while Redis waits.
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('SET', KEYS[5], ARGV[2])
return 'done'
