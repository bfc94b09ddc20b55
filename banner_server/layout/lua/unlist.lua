-- KEYS[1] = the global `current` version key
-- KEYS[2] = the history of versions
-- ARGV[1] = the version about to be deleted
--
-- Before its keys go, a version leaves `history`, unless it is current: a rollback then
-- either switched to it first (and it stays) or can no longer choose it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
