-- release: compare-and-delete, so a holder whose lock expired and was taken over cannot release
-- the new holder's lock. KEYS: 1 the lock. ARGV: token. Reply: 1 released, 0 not the holder.
local held = redis.call('GET', KEYS[1])
if held then
  local space = string.find(held, ' ', 1, true)
  if space and string.sub(held, space + 1) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 1
  end
end
return 0
