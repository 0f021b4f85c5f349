-- Delete a push subscription (only the given owner's, unless ARGV[2] is empty).
-- KEYS[1] subscriptions hash, KEYS[2] users set
-- ARGV[1] endpoint, ARGV[2] user or '', ARGV[3] user key prefix
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then
  return 0
end
local owner = cjson.decode(old)['user_id']
if ARGV[2] ~= '' and owner ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', ARGV[3] .. owner, ARGV[1])
if redis.call('SCARD', ARGV[3] .. owner) == 0 then
  redis.call('SREM', KEYS[2], owner)
end
return 1
