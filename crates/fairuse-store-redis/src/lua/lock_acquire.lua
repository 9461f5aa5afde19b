-- try_acquire: the lock is free when missing or when its holder's expiry (by the callers' clock,
-- like every other backend) is not after `now`. Redis's own TTL is longer and only collects
-- garbage, so a skew between the replicas' clocks and Redis's never frees a lock early.
-- KEYS: 1 the lock. ARGV: now_ms, expires_at_ms, token, gc_ttl_ms.
-- Value: "<expires_at_ms> <token>". Reply: 1 acquired, 0 held by someone (or by the same token).
local held = redis.call('GET', KEYS[1])
if held then
  local expires = tonumber(string.match(held, '^(%-?%d+) '))
  if expires and expires > tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[3], 'PX', ARGV[4])
return 1
