-- hit: counts one request in a fixed window. The key names the window (computed from the
-- caller's `now`), so a new window is a new key; the TTL set on creation collects it.
-- KEYS: 1 the window's counter. ARGV: gc_ttl_ms. Reply: the count including this hit.
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
