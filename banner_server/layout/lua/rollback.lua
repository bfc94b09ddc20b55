-- KEYS[1] = the load lock
-- KEYS[2] = the global `current` version key
-- KEYS[3] = the history of versions
-- KEYS[4] = the target version's selections (proof its keys are still there)
-- ARGV[1] = this rollback's lock token
-- ARGV[2] = the target version
--
-- A rollback's switch: under the lock, and only to a version still in `history` whose
-- keys are there (cleanup leaves `history` first, see unlist.lua).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if not redis.call('ZSCORE', KEYS[3], ARGV[2]) then return -1 end
if redis.call('EXISTS', KEYS[4]) == 0 then return -2 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
