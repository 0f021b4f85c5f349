-- Store a push subscription by endpoint, moving it from a previous owner.
-- KEYS[1] subscriptions hash, KEYS[2] users set
-- ARGV[1] endpoint, ARGV[2] user, ARGV[3] record (JSON), ARGV[4] user key prefix
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local owner = cjson.decode(old)['user_id']
  if owner ~= ARGV[2] then
    redis.call('SREM', ARGV[4] .. owner, ARGV[1])
    if redis.call('SCARD', ARGV[4] .. owner) == 0 then
      redis.call('SREM', KEYS[2], owner)
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('SADD', ARGV[4] .. ARGV[2], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
