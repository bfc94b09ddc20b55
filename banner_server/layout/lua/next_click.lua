-- KEYS[1] = the click id counter (control slot)
-- KEYS[2] = the layout's number of visitor groups G (control slot)
--
-- INCR and the layout's G in one call (both control keys): the id and the groups it
-- is spread over come from the same moment.
local id = redis.call('INCR', KEYS[1])
return {id, redis.call('GET', KEYS[2])}
