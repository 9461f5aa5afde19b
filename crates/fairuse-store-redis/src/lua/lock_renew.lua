-- renew: compare-and-set of the expiry. If `token` holds the lock and its expiry (by the callers'
-- clock) is after `now`, it is held until `expires_at` instead, shorter or longer.
-- KEYS: 1 the lock. ARGV: now_ms, expires_at_ms, token, gc_ttl_ms. Reply: 1 renewed, 0 not the holder.
local held = redis.call('GET', KEYS[1])
if held then
  local expires, holder = string.match(held, '^(%-?%d+) (.*)$')
  if holder == ARGV[3] and tonumber(expires) > tonumber(ARGV[1]) then
    redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[3], 'PX', ARGV[4])
    return 1
  end
end
return 0
