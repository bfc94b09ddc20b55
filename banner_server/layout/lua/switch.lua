-- KEYS[1] = the load lock
-- KEYS[2] = the global `current` version key
-- KEYS[3] = the history of versions (sorted set: version -> load order)
-- KEYS[4] = the layout's number of visitor groups G
-- ARGV[1] = this load's lock token
-- ARGV[2] = the new version
-- ARGV[3] = the new version's load order
-- ARGV[4] = the new layout's G
--
-- The switch: SET current only while this load still holds the lock, in one step, and
-- enter the new version in `history`, what may be rolled back to.  A current version
-- missing from `history` (published before it existed) is entered too, by its id's
-- number, so the version serving until now can always be switched back to.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local old = redis.call('GET', KEYS[2])
if old then
    local n = tonumber(string.match(old, '^(%d+)'))
    if n then redis.call('ZADD', KEYS[3], 'NX', n, old) end
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('SET', KEYS[4], ARGV[4])
return 1
