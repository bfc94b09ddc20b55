-- KEYS[1] = the click's record (the click id's group)
-- KEYS[2] = the hour's click index (same group)
-- ARGV[1] = the record
-- ARGV[2] = seconds the record is kept (a conversion may name the click this long)
-- ARGV[3] = the click id
-- ARGV[4] = the index line
-- ARGV[5] = seconds the hour's index is kept (keep-events)
--
-- The record and its index line: both or neither.
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
