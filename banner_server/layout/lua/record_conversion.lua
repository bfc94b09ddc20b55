-- KEYS[1] = the conversion's record (the conversion id's group)
-- KEYS[2] = the hour's conversion index (same group)
-- KEYS[3] = the group's hour registry (hour -> its end, unix time), same group
-- ARGV[1] = the record: "click_id revenue"
-- ARGV[2] = the index line: "click_id revenue quarter", or '' when the click is unknown
-- ARGV[3] = the hour
-- ARGV[4] = the conversion id
-- ARGV[5] = the hour's end (unix time)
--
-- The check and the write are one step: two postbacks of one conversion at once
-- record it once; the same conversion again is 'same', other values 'conflict'.
-- No TTL (never evicted): EventStore.prune removes the record with its hour's index.
local seen = redis.call('GET', KEYS[1])
if seen then
  if seen == ARGV[1] then return {'same', seen} end
  return {'conflict', seen}
end
if ARGV[2] == '' then return {'unknown_click', false} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[3], 'LT', ARGV[5], ARGV[3])
return {'created', ARGV[1]}
