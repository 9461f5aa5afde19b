-- add_forwarded: INCRBY and refresh the expiry in one step, so a counter never lives without one.
-- KEYS: 1 the day's counter. ARGV: ms, gc_ttl_ms. Reply: the new total.
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
