-- Give up a webhook subscription's delivery lease, if this node holds it.
-- KEYS[1] the lease key; ARGV: node
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
