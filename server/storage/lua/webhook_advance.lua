-- Compare-and-set one incident's cursor of a webhook subscription.
-- KEYS[1] the subscriptions hash, KEYS[2] the subscription's cursors hash
-- ARGV: subscription id, incident, expected seq ('' for no cursor yet), new seq,
--       force ('1': set whatever the cursor is, for a replay)
-- Returns 1 if set, 0 if the subscription is gone or the cursor was not the expected one.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[5] ~= '1' then
  local current = redis.call('HGET', KEYS[2], ARGV[2])
  if (current or '') ~= ARGV[3] then return 0 end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
return 1
