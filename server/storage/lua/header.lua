-- Merge header assignments into an incident's summary, in the same MULTI as
-- the append (append.lua) that stored the events they come from.
--
-- Runs only if that append succeeded: the head must now be exactly the one
-- the run produced (its hash is unique). Per key, the assignment with the
-- highest seq wins, except for "org:<id>" keys where the lowest wins (an
-- organisation keeps the place where it first joined); see
-- server/domain/summary.py. The merge is order-independent, so nodes never
-- need each other's view of the header.
--
-- KEYS[1] summary hash (field <key> = msgpack value, field "#<key>" = seq)
-- KEYS[2] head hash
-- ARGV[1] head hash the append produced
-- ARGV[2..] triples: key, seq, value (msgpack)
--
-- Returns 1 if merged, 0 if the append did not happen.

if redis.call('HGET', KEYS[2], 'hash') ~= ARGV[1] then
  return 0
end
for i = 2, #ARGV, 3 do
  local key, seq = ARGV[i], tonumber(ARGV[i + 1])
  local current = redis.call('HGET', KEYS[1], '#' .. key)
  local replace = not current
  if current then
    if string.sub(key, 1, 4) == 'org:' then
      replace = seq < tonumber(current)
    else
      replace = seq > tonumber(current)
    end
  end
  if replace then
    redis.call('HSET', KEYS[1], key, ARGV[i + 2], '#' .. key, ARGV[i + 1])
  end
end
return 1
