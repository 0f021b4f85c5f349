-- Index the words of just-appended events, in the same MULTI as the append
-- (append.lua) that stored them: an acknowledged event is searchable.
--
-- Runs only if that append succeeded: the head must now be exactly the one
-- the run produced (its hash is unique), as header.lua checks.
--
-- KEYS[1]    head hash
-- KEYS[2..]  one term ZSET per (word, event): liaison:{<incident>}:term:<word>
-- ARGV[1]    head hash the append produced
-- ARGV[2..]  the seq to add to KEYS[i] (score and member both the seq)
--
-- Returns 1 if indexed, 0 if the append did not happen.

if redis.call('HGET', KEYS[1], 'hash') ~= ARGV[1] then
  return 0
end
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[i], ARGV[i])
end
return 1
