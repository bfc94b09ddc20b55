-- KEYS[1] = the token index of the hour the banner was served (token digest -> click id)
-- KEYS[2] = the click records of the hour clicked (click id -> record), same group
-- KEYS[3] = the group's hour registry (hour -> its end, unix time), same group
-- ARGV[1] = the token's digest ('' for a click without a token: no replay check)
-- ARGV[2] = the new click id (its group is the token's, so one slot)
-- ARGV[3] = the record: "campaign banner quarter served_at clicked_at flags"
-- ARGV[4] = the hour clicked
-- ARGV[5] = its end (unix time)
-- ARGV[6] = the hour the banner was served
-- ARGV[7] = its end (unix time)
--
-- One click per click URL: a token seen before answers the click id it got then
-- ('replayed', nothing written).  A new id is written with HSETNX: an id taken
-- already (same millisecond, same 20 random bits) answers 'taken' and the caller draws
-- another.  The record, the token's line and the registry: all or nothing.  Nothing
-- has a TTL (never evicted under volatile-lru); EventStore.prune removes old hours.
if ARGV[1] ~= '' then
  local seen = redis.call('HGET', KEYS[1], ARGV[1])
  if seen then return {'replayed', seen} end
end
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 0 then return {'taken', ARGV[2]} end
redis.call('ZADD', KEYS[3], 'LT', ARGV[5], ARGV[4])
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[3], 'LT', ARGV[7], ARGV[6])
end
return {'recorded', ARGV[2]}
