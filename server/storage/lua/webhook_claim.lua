-- Take or renew a lease (a webhook subscription's delivery, the deadline rules).
-- KEYS[1] the lease key; ARGV: node, ttl (ms)
-- Returns 1 if the node holds the lease now, 0 if another node's is running.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
