-- migrate_fu1: converts one user's meter from the old layout (`fu1`: a state hash and seven
-- hashes) into the meter hash of meter.lua (`fu2`), atomically, then deletes the old keys. Run by
-- `fairuse migrate` once per user found; running it again finds no old key and does nothing.
--
-- KEYS: 1 the fu2 meter hash; 2 the fu1 state (hz = horizon, pm = prune mark); 3, 4, 5 the fu1
--       capped minutes, hours and days; 6..9 the fu1 minute hashes of the realtime, sync_fresh,
--       sync_backfill and custom_stt lanes. All carry the user's hash tag (one Cluster slot).
-- ARGV: now_ms, retention_ms, meter_ttl_ms, window count W, W window lengths in minutes.
-- Reply: { old keys deleted, merged into an existing fu2 hash (1/0), minute fields carried over,
--          minute fields dropped below the horizon }; all zero when the user had no old key.
--
-- What is carried over is what the old store counted: the minute buckets at or above its horizon
-- (the old script pruned lazily, so buckets below it may still have been there; they never
-- counted and are dropped). The hour, day and uncapped-hour fields are rebuilt from those minutes
-- as record.lua would have written them, so the running sums, the sweep and the pruning of the new
-- layout see a hash exactly like one that recorded the same buckets.
--
-- A user who already has a fu2 hash (new replicas served them before this ran, or an old replica
-- kept recording after a first `fairuse migrate`) gets the two meters merged by adding bucket to
-- bucket: each report was recorded by exactly one of the layouts (idempotency keys and sessions
-- are shared fu1 keys, so a retry across layouts was still caught), so the user's usage is the
-- sum. Preferring either side would drop usage the service accepted. The merged horizon is the
-- later of the two, like a single meter that had seen every call.
--
-- The migration moves no horizon and prunes nothing of its own (it is not a report): the new
-- store answers every read as the old one would have. Expiry: the hash lives as long as the
-- longest-lived of the old keys and its own (each record refreshed those to the retention past the
-- user's last report); `ex` is left alone, so the next report sets the usual expiry.
-- KEYS[6..9], in `Lane::ALL` order. The realtime lane keeps no field of its own (meter.lua): its
-- minutes are already in the capped minutes, less sync_fresh's.
local OLD_LANES = { false, 'f', 'b', 'c' }
local key = KEYS[1]
local now_min = math.floor(tonumber(ARGV[1]) / 60000)
local retention_min = math.floor(tonumber(ARGV[2]) / 60000)
local meter_ttl = tonumber(ARGV[3])
local nwin = tonumber(ARGV[4])
local windows = {}
for i = 1, nwin do
  windows[i] = tonumber(ARGV[4 + i])
end

local old_keys = redis.call('EXISTS', unpack(KEYS, 2, 9))
if old_keys == 0 then
  return { 0, 0, 0, 0 }
end

local old = redis.call('HMGET', KEYS[2], 'hz')
local cur = redis.call('HMGET', key, 's', 'hz')
local cur_old = cur[2] and true
local st = load_state(key, cur[1], cur_old, windows)
local old_hz, hz, pm, mx, ma, ex = tonumber(old[1]), st[1] or nil, st[2] or nil, st[3] or nil, st[4] or nil,
  st[5] or nil
local merged = redis.call('EXISTS', key)
if old_hz and (not hz or old_hz > hz) then
  hz = old_hz
end
if not hz then
  -- Old buckets without a state hash cannot come from the old script (it wrote the state with
  -- every bucket, under the same expiry): count them from where a report now would.
  hz = now_min - retention_min + 1
end

-- The fields to add to, summed per field, in order of first use (as record.lua's `add`).
local adds, order = {}, {}
local function add(field, ms)
  if adds[field] then
    adds[field] = adds[field] + ms
  else
    adds[field] = ms
    order[#order + 1] = field
  end
end
local carried, dropped = 0, 0
local capped = redis.call('HGETALL', KEYS[3])
for i = 1, #capped, 2 do
  local minute, ms = tonumber(capped[i]), tonumber(capped[i + 1])
  if minute and ms then
    if minute >= hz then
      add(fmt(minute), ms)
      add('h' .. fmt(math.floor(minute / 60)), ms)
      add('d' .. fmt(math.floor(minute / 1440)), ms)
      if not mx or minute > mx then
        mx = minute
      end
      carried = carried + 1
    else
      dropped = dropped + 1
    end
  end
end
for lane = 1, 4 do
  local fields = redis.call('HGETALL', KEYS[5 + lane])
  for i = 1, #fields, 2 do
    local minute, ms = tonumber(fields[i]), tonumber(fields[i + 1])
    if minute and ms then
      if minute >= hz then
        if OLD_LANES[lane] then
          add(OLD_LANES[lane] .. fmt(minute), ms)
        end
        if lane > 2 then
          -- Uncapped lanes: the hour marker record.lua keeps for the sweep.
          add('u' .. fmt(math.floor(minute / 60)), ms)
        end
        if not ma or minute > ma then
          ma = minute
        end
        carried = carried + 1
      else
        dropped = dropped + 1
      end
    end
  end
end

local set = {}
local existing = {}
if #order > 0 then
  existing = hcall('HMGET', key, order)
end
for i = 1, #order do
  set[#set + 1] = order[i]
  set[#set + 1] = fmt(tonumber(existing[i] or 0) + adds[order[i]])
end
-- The expiry to keep, read before the hash is (re)written: -2 = no key, -1 = no expiry.
local ttl = redis.call('PTTL', key)
for k = 2, 9 do
  local t = redis.call('PTTL', KEYS[k])
  if t > ttl then
    ttl = t
  end
end
if #set > 0 then
  hcall('HSET', key, set)
end
if cur_old then
  -- The state of earlier fu2 scripts (merged into `st` above) now lives in `s` alone.
  hcall('HDEL', key, old_state_names(windows))
end

-- The state with the running window sums at `now`, as record.lua stores them after a call (cut
-- afresh: the buckets were just added to).
local names, signs = {}, {}
local plans = plan_windows(windows, {}, now_min, hz, mx, names, signs)
local values = {}
if #names > 0 then
  values = hcall('HMGET', key, names)
end
local totals = window_totals(plans, values, signs)
redis.call('HSET', key, 's', pack_state({}, hz, pm or hz, mx, ma, ex, windows, plans, totals))

if ttl < 1 then
  ttl = meter_ttl
end
redis.call('PEXPIRE', key, ttl)
redis.call('DEL', unpack(KEYS, 2, 9))
return { old_keys, merged, carried, dropped }
