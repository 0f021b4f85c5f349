-- Append to a webhook subscription's delivery log, keeping the newest entries.
-- KEYS[1] the subscriptions hash, KEYS[2] the log list; ARGV: id, entry, keep
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return 1
