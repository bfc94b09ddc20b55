-- KEYS[1] = the visitor's last-banner key (read, then written)
-- KEYS[2] = optional: the group's impressions counter of this hour and quarter
-- ARGV[1] = visitor TTL in seconds
-- ARGV[2] = the last banner when KEYS[1] has none ('' for none)
-- ARGV[3] = the campaign
-- ARGV[4] = seconds an impressions counter is kept
-- ARGV[5..] = the candidate banners, in a random order drawn by the worker
--
-- Redis answers but `current` is gone (FLUSHALL, a restart without data): the
-- worker draws from its snapshot, and Redis still remembers the visitor, so the
-- no-repeat promise holds across workers and hosts as long as Redis answers.
local last = redis.call('GET', KEYS[1]) or ARGV[2]
local pick = ARGV[5]
for i = 5, #ARGV do
  if ARGV[i] ~= last then pick = ARGV[i] break end
end
redis.call('SET', KEYS[1], pick, 'EX', ARGV[1])
if KEYS[2] and redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':' .. pick, 1) == 1 then
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return pick
