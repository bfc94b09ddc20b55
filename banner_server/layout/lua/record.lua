-- KEYS[1] = the visitor's last-banner key (read, then written)
-- KEYS[2] = optional: the group's impressions counter of this hour and quarter (the
--           invalid one by reason when ARGV[6] is not '')
-- KEYS[3] = with KEYS[2]: the group's hour registry (hour -> its end, unix time)
-- ARGV[1] = visitor TTL in seconds
-- ARGV[2] = the last banner when KEYS[1] has none ('' for none)
-- ARGV[3] = the campaign
-- ARGV[4] = the hour's end (unix time; an upper bound when the caller only knows its name)
-- ARGV[5] = the hour
-- ARGV[6] = why the impression is invalid (web/quality.py), '' for a valid one
-- ARGV[7..] = the candidate banners, in a random order drawn by the worker
--
-- Redis answers but `current` is gone (FLUSHALL, a restart without data): the
-- worker draws from its snapshot, and Redis still remembers the visitor, so the
-- no-repeat promise holds across workers and hosts as long as Redis answers.
-- (Frequency caps are not enforced here: the snapshot path is degraded service.)
local last = redis.call('GET', KEYS[1]) or ARGV[2]
local pick = ARGV[7]
for i = 7, #ARGV do
  if ARGV[i] ~= last then pick = ARGV[i] break end
end
redis.call('SET', KEYS[1], pick, 'EX', ARGV[1])
local fld = ARGV[3] .. ':' .. pick
if ARGV[6] ~= '' then fld = fld .. ':' .. ARGV[6] end
if KEYS[2] and redis.call('HINCRBY', KEYS[2], fld, 1) == 1 then
  redis.call('ZADD', KEYS[3], 'LT', ARGV[4], ARGV[5])
end
return pick
