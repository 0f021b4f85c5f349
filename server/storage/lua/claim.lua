-- Claim client ids for one user (SPEC 12: a client id is the user's, across
-- incidents), before the append: one script per user and batch instead of an
-- HSETNX and an HGET per id. One key, so one Redis Cluster slot.
--
-- KEYS[1] the user's claims (redis_keys.cids_key): client id -> claim
-- ARGV    pairs: client id, claim ("<incident>\0<event type>")
--
-- Returns, per pair, false (a nil reply) when this call made the claim, or
-- the claim that held the id already (this one's own, on a retry).

local held = {}
for i = 1, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    held[#held + 1] = false
  else
    held[#held + 1] = redis.call('HGET', KEYS[1], ARGV[i])
  end
end
return held
