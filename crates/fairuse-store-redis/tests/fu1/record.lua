-- TEST FIXTURE: src/lua/record.lua of the old meter layout (fu1), as on main at 938fc0f, kept so the
-- migration tests write and read old-layout meters with the old code itself. Not shipped.
-- record_and_read: records a batch of one user's reports and returns the outcomes and the capped
-- window totals after them, in one round trip and atomically (so a check never reads a total
-- that misses part of its own batch). It mirrors `UserMeter::record` of the domain step by step.
--
-- KEYS: 1 meter state (hash: hz = horizon, the oldest minute kept; pm = every minute field below
--       it has been deleted), 2 capped minutes, 3 capped hours, 4 capped days, 5..8 the minute
--       hashes of the four lanes, then the idempotency and session keys of the reports.
-- ARGV: now_ms, retention_ms, gc_ttl_ms, prune_minutes, window count W, W window lengths in
--       minutes, the window plan (its length P, then P values: see windows.lua and src/plan.rs),
--       then 7 values per report: lane key index, capped (1/0), speech ms (a delta or a session's
--       cumulative total), stt ms, minute of `at` ('' = now), idempotency key index (0 = none),
--       session key index (0 = a delta report).
-- Reply: 3 integers per report (speech added, stt added, duplicate 1/0), W totals, fields read.
local now = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local gc_ttl = ARGV[3]
local prune_minutes = tonumber(ARGV[4])
local nwin = tonumber(ARGV[5])
local windows = {}
for i = 1, nwin do
  windows[i] = tonumber(ARGV[5 + i])
end
local now_min = math.floor(now / 60000)
local oldest_kept = now_min - math.floor(retention / 60000) + 1
local state = redis.call('HMGET', KEYS[1], 'hz', 'pm')
local horizon = tonumber(state[1])
local pruned = tonumber(state[2])

local out = {}
local wrote = false
local plan = 6 + nwin
local first = plan + 1 + tonumber(ARGV[plan])
for b = first, #ARGV - 6, 7 do
  local lane_key = KEYS[tonumber(ARGV[b])]
  local capped = ARGV[b + 1] == '1'
  local amount = tonumber(ARGV[b + 2])
  local stt = tonumber(ARGV[b + 3])
  local at = ARGV[b + 4]
  local idem = tonumber(ARGV[b + 5])
  local sess = tonumber(ARGV[b + 6])
  local duplicate = false
  if idem > 0 then
    -- The value is when the key was first seen, by the caller's clock: the domain forgets a key
    -- after the retention measured in `now`, and Redis's own TTL (longer) only collects garbage.
    local seen = tonumber(redis.call('GET', KEYS[idem]))
    if seen and now - seen < retention then
      duplicate = true
    else
      redis.call('SET', KEYS[idem], ARGV[1], 'PX', gc_ttl)
    end
  end
  if duplicate then
    -- Like the domain, a duplicate changes nothing: not the session maximum, not the horizon.
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = 1
  else
    local speech, stt_added = amount, stt
    if sess > 0 then
      -- "max speech, max stt, last seen"; a session silent for the retention is forgotten.
      local max_speech, max_stt = 0, 0
      local slot = redis.call('GET', KEYS[sess])
      if slot then
        local s, t, last = string.match(slot, '^(%-?%d+) (%-?%d+) (%-?%d+)$')
        if s and now - tonumber(last) < retention then
          max_speech, max_stt = tonumber(s), tonumber(t)
        end
      end
      speech = math.max(amount - max_speech, 0)
      stt_added = math.max(stt - max_stt, 0)
      redis.call('SET', KEYS[sess],
        string.format('%d %d %d', math.max(max_speech, amount), math.max(max_stt, stt), now), 'PX', gc_ttl)
    end
    if not horizon or oldest_kept > horizon then
      horizon = oldest_kept
    end
    local minute = now_min
    if at ~= '' then
      minute = tonumber(at)
    end
    -- The domain adds a bucket and prunes below the horizon right after, so a bucket below it
    -- never counts; zero speech creates no bucket. (The horizon only moves forward. If replicas'
    -- clocks disagree so that `now` steps back, a bucket between this call's oldest kept minute
    -- and the horizon is dropped here, where the domain would keep it until its next prune: it
    -- is older than the retention by the newest clock seen, so outside every window anyway.)
    if speech ~= 0 and minute >= horizon then
      local field = string.format('%d', minute)
      local ms = string.format('%d', speech)
      redis.call('HINCRBY', lane_key, field, ms)
      if capped then
        redis.call('HINCRBY', KEYS[2], field, ms)
        redis.call('HINCRBY', KEYS[3], string.format('%d', math.floor(minute / 60)), ms)
        redis.call('HINCRBY', KEYS[4], string.format('%d', math.floor(minute / 1440)), ms)
      end
    end
    out[#out + 1] = speech
    out[#out + 1] = stt_added
    out[#out + 1] = 0
    wrote = true
  end
end

if wrote then
  -- Bounded pruning: delete the minute fields that fell below the horizon since the last call,
  -- at most `prune_minutes` minutes of them per call (a user back after a long pause catches up
  -- over a few calls; until then the horizon already keeps the stale fields out of every read).
  if not pruned then
    pruned = horizon
  end
  local target = math.min(horizon, pruned + prune_minutes)
  if target > pruned then
    local minutes = {}
    for m = pruned, target - 1 do
      minutes[#minutes + 1] = string.format('%d', m)
    end
    redis.call('HDEL', KEYS[2], unpack(minutes))
    for k = 5, 8 do
      redis.call('HDEL', KEYS[k], unpack(minutes))
    end
    -- An hour or day roll-up goes once all of its minutes are below the new mark.
    local hours = {}
    for h = math.floor(pruned / 60), math.floor(target / 60) - 1 do
      hours[#hours + 1] = string.format('%d', h)
    end
    if #hours > 0 then
      redis.call('HDEL', KEYS[3], unpack(hours))
    end
    local days = {}
    for d = math.floor(pruned / 1440), math.floor(target / 1440) - 1 do
      days[#days + 1] = string.format('%d', d)
    end
    if #days > 0 then
      redis.call('HDEL', KEYS[4], unpack(days))
    end
    pruned = target
  end
  redis.call('HSET', KEYS[1], 'hz', string.format('%d', horizon), 'pm', string.format('%d', pruned))
  -- A user idle for longer than the retention has nothing left in any window: let Redis drop
  -- every key of the meter (PEXPIRE on a key that does not exist is a no-op).
  for k = 1, 8 do
    redis.call('PEXPIRE', KEYS[k], gc_ttl)
  end
end

local totals, read = planned_totals(KEYS[2], KEYS[3], KEYS[4], now_min, horizon, windows, plan)
for w = 1, #totals do
  out[#out + 1] = totals[w]
end
out[#out + 1] = read
return out
