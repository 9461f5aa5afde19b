-- The horizon and the newest minute holding speech of any lane (`hz`, `ma` of meter.lua), each
-- nil when absent: what `users_since` asks of every meter it lists.
-- KEYS: 1 the meter hash.
local reply = redis.call('HMGET', KEYS[1], 's', 'hz')
local st = load_state(KEYS[1], reply[1], reply[2] and true, {})
return { st[1], st[4] }
