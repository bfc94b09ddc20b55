-- KEYS[1] = the group's `current` version key
-- KEYS[2] = the group's copy of the selection set of (ARGV[1], quarter, campaign)
-- KEYS[3] = the visitor's last-banner key
-- KEYS[4] = optional: the group's impressions counter of this hour and quarter: the valid
--           one (`imp`), or with ARGV[8] the invalid one by reason (`inv`); untouched
--           when ARGV[6] is '' (then any key of the slot: it only holds KEYS[6]'s place)
-- KEYS[5] = with KEYS[4]: the group's hour registry (hour -> its end, unix time)
-- KEYS[6] = optional: the visitor's frequency-cap counter of the campaign and window
-- ARGV[1] = the version KEYS[2] belongs to
-- ARGV[2] = visitor TTL in seconds
-- ARGV[3] = the last banner when KEYS[3] has none ('' for none: the one a new cookie
--           carries from the client's cookie-less request)
-- ARGV[4] = the campaign
-- ARGV[5] = the hour's end (unix time; an upper bound when the caller only knows its name)
-- ARGV[6] = the hour ('' or absent: nothing counted)
-- ARGV[7] = the cap, "N:W": N impressions a visitor may have of the campaign in the
--           window of W seconds (KEYS[6]'s TTL); '' or absent: no cap
-- ARGV[8] = why the impression is invalid (web/quality.py); '' or absent: valid
--
-- One round trip to one node: check the group's `current` is the version the worker
-- built its keys for, draw a banner of the campaign's selection with SRANDMEMBER that
-- is not the visitor's last one (rejection sampling, so the draw stays uniform over
-- the others), remember it.  Every key is declared and in the visitor's group slot
-- (cluster-safe); the version check and the draw are one atomic step, so no answer
-- mixes two loads.  Another version current: the reply names it and the worker asks
-- again with its keys (once per version and worker).
--
-- A capped visitor (KEYS[6] at N) gets {ver, 'capped'}: nothing drawn, counted
-- or remembered.  The cap counts valid impressions only (a bot's or a prefetch's do
-- not use up the visitor's), and the check and the count are one atomic step with the
-- draw, so concurrent requests of one visitor on any hosts never pass the cap.
local ver = redis.call('GET', KEYS[1])
if not ver then return {} end
if ver ~= ARGV[1] then return {ver} end
local reason = ARGV[8] or ''
local cap, window
if KEYS[6] then
  cap, window = string.match(ARGV[7], '^(%d+):(%d+)$')
  cap = tonumber(cap)
end
-- A valid impression is counted first (one call on the common path, not GET then
-- INCR) and taken back when it is over the cap or nothing is drawn.
local counted = false
if cap and reason == '' then
  local n = redis.call('INCR', KEYS[6])
  if n > cap then
    redis.call('DECR', KEYS[6])
    return {ver, 'capped'}
  end
  if n == 1 then redis.call('EXPIRE', KEYS[6], window) end
  counted = true
elseif cap and (tonumber(redis.call('GET', KEYS[6])) or 0) >= cap then
  return {ver, 'capped'}
end
local pick = redis.call('SRANDMEMBER', KEYS[2])
if not pick then
  if counted then redis.call('DECR', KEYS[6]) end
  return {ver, ''}
end
local last = redis.call('GET', KEYS[3]) or ARGV[3]
if pick == last and redis.call('SCARD', KEYS[2]) > 1 then
  for i = 1, 32 do
    pick = redis.call('SRANDMEMBER', KEYS[2])
    if pick ~= last then break end
  end
  if pick == last then
    for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
      if m ~= last then pick = m break end
    end
  end
end
redis.call('SET', KEYS[3], pick, 'EX', ARGV[2])
-- one counter per campaign and banner (memory follows them, not the traffic), no TTL
-- (never evicted); its hour is entered in the registry when a field is created, where
-- EventStore.prune finds it (the same one extra call the EXPIRE it replaces cost).
-- An invalid impression is counted apart, by reason, in the same step.
if KEYS[4] and (ARGV[6] or '') ~= '' then
  local fld = ARGV[4] .. ':' .. pick
  if reason ~= '' then fld = fld .. ':' .. reason end
  if redis.call('HINCRBY', KEYS[4], fld, 1) == 1 then
    redis.call('ZADD', KEYS[5], 'LT', ARGV[5], ARGV[6])
  end
end
return {ver, pick}
