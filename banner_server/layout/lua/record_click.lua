-- KEYS[1] = the token index of the hour the banner was served (token digest -> click id)
-- KEYS[2] = the click records of the hour clicked (click id -> record), same group
-- KEYS[3] = the group's hour registry (hour -> its end, unix time), same group
-- KEYS[4] = the invalid clicks of the hour clicked ("quarter:campaign:banner:reason" ->
--           count), same group
-- KEYS[5] = optional: the clicking visitor's click-rate counter of this minute, same
--           group (the caller picks the visitor's group for the click)
-- ARGV[1] = the token's digest ('' for a click without a token: no replay check)
-- ARGV[2] = the new click id (its group is the one of KEYS, so one slot)
-- ARGV[3] = the record: "campaign banner quarter served_at clicked_at flags"
-- ARGV[4] = the hour clicked
-- ARGV[5] = its end (unix time)
-- ARGV[6] = the hour the banner was served
-- ARGV[7] = its end (unix time)
-- ARGV[8] = the request's reason to be invalid (head, prefetch, bot...; '' for none):
--           before a replay in the precedence (web/quality.py)
-- ARGV[9] = the click's own reason after a replay (other_visitor, no_impression,
--           too_fast; '' for none)
-- ARGV[10] = clicks a visitor may make in a minute ('0': no cap): more is `click_rate`
-- ARGV[11] = KEYS[5]'s TTL in seconds
-- ARGV[12] = "quarter:campaign:banner": the field of KEYS[4] before its reason ('': the
--            click is not classified, a replay is not counted)
--
-- One click per click URL: a token seen before answers the click id it got then
-- ('replayed', nothing written but its count in KEYS[4]: replays are invalid, `replay`).
-- A new id already taken (same millisecond, same 20 random bits) answers 'taken' and
-- the caller draws another.  Otherwise the click-rate counter is counted (no second
-- round trip), the record is written with its reason when it is invalid (kept for
-- audit; the export writes it only with --invalid), the hours are entered in the
-- registry: all or nothing.  Nothing recorded has a TTL (never evicted under
-- volatile-lru; EventStore.prune removes old hours); the rate counter is anonymous,
-- bounded state and has one.  The reply: {outcome, click id, reason ('' valid)}.
local reason = ARGV[8]
if ARGV[1] ~= '' then
  local seen = redis.call('HGET', KEYS[1], ARGV[1])
  if seen then
    if reason == '' then reason = 'replay' end
    if ARGV[12] ~= '' and redis.call('HINCRBY', KEYS[4], ARGV[12] .. ':' .. reason, 1) == 1 then
      redis.call('ZADD', KEYS[3], 'LT', ARGV[5], ARGV[4])
    end
    return {'replayed', seen, ARGV[12] ~= '' and reason or ''}
  end
end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return {'taken', ARGV[2], ''} end
if reason == '' then reason = ARGV[9] end
if KEYS[5] then
  local rate = redis.call('INCR', KEYS[5])
  if rate == 1 then redis.call('EXPIRE', KEYS[5], ARGV[11]) end
  local most = tonumber(ARGV[10]) or 0
  if reason == '' and most > 0 and rate > most then reason = 'click_rate' end
end
local record = ARGV[3]
if reason ~= '' then
  record = record .. ' ' .. reason
  redis.call('HINCRBY', KEYS[4], ARGV[12] .. ':' .. reason, 1)
end
redis.call('HSET', KEYS[2], ARGV[2], record)
redis.call('ZADD', KEYS[3], 'LT', ARGV[5], ARGV[4])
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[3], 'LT', ARGV[7], ARGV[6])
end
return {'recorded', ARGV[2], reason}
