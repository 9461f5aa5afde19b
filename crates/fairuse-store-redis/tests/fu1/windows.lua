-- TEST FIXTURE: src/lua/windows.lua of the old meter layout (fu1), as on main at 938fc0f, kept so the
-- migration tests write and read old-layout meters with the old code itself. Not shipped.
-- Capped window totals, exact to the minute, with work bounded by the window lengths and never
-- by the number of active minutes (Omi's check read every active minute of the week).
--
-- Capped speech (realtime + sync_fresh) is kept three times: per minute (cm), per hour (ch) and
-- per UTC day (cd). A window of M minutes at minute b is the minutes a..b with a = b - M + 1
-- (raised to the meter's horizon, below which buckets count as pruned). It is cut greedily from
-- the left into whole days, then whole hours, then single minutes, so a window reads at most
-- 59 + 59 minute fields, 23 + 23 hour fields and floor(M / 1440) day fields, and the shipped
-- 24 h / 72 h / 168 h windows read at most 253 distinct fields together (their right edges are
-- shared; the count only depends on where `now` falls in the hour and the day).
--
-- An hour or day field is only used when its whole span lies inside the window, so speech
-- stamped in the future (allowed by the skew limit) and minutes below the horizon, which the hour
-- and day roll-ups still include until pruning deletes them, never leak into a total.
local function capped_totals(cm, ch, cd, now_min, horizon, windows)
  local fields = { {}, {}, {} } -- per roll-up (minute, hour, day): field names to read
  local index = { {}, {}, {} } -- per roll-up: field name -> position in `fields`
  local plans = {} -- per window: pairs of (roll-up, position)
  local function use(level, id)
    local name = string.format('%d', id)
    local pos = index[level][name]
    if not pos then
      pos = #fields[level] + 1
      fields[level][pos] = name
      index[level][name] = pos
    end
    return pos
  end
  for w = 1, #windows do
    local parts = {}
    local x = now_min - windows[w] + 1
    if horizon and x < horizon then
      x = horizon
    end
    while x <= now_min do
      if x % 1440 == 0 and x + 1439 <= now_min then
        parts[#parts + 1] = 3
        parts[#parts + 1] = use(3, x / 1440)
        x = x + 1440
      elseif x % 60 == 0 and x + 59 <= now_min then
        parts[#parts + 1] = 2
        parts[#parts + 1] = use(2, x / 60)
        x = x + 60
      else
        parts[#parts + 1] = 1
        parts[#parts + 1] = use(1, x)
        x = x + 1
      end
    end
    plans[w] = parts
  end
  local keys = { cm, ch, cd }
  local values = { {}, {}, {} }
  local read = 0
  for level = 1, 3 do
    if #fields[level] > 0 then
      values[level] = redis.call('HMGET', keys[level], unpack(fields[level]))
      read = read + #fields[level]
    end
  end
  local totals = {}
  for w = 1, #windows do
    local sum, parts = 0, plans[w]
    for i = 1, #parts, 2 do
      local v = values[parts[i]][parts[i + 1]]
      if v then
        sum = sum + tonumber(v)
      end
    end
    totals[w] = sum
  end
  return totals, read
end

-- The same totals from the window plan the caller computed (see `src/plan.rs`), starting at
-- ARGV[p]: the plan's length, the smallest window start, the minute, hour and day field counts,
-- the field names, then per window its runs of (roll-up, first position, count). Only HMGETs and
-- sums run here. The plan was cut without the horizon, so it is used only when the horizon does
-- not raise any window's start; otherwise (clock trouble, or no plan) the windows are cut above.
local function planned_totals(cm, ch, cd, now_min, horizon, windows, p)
  local len = tonumber(ARGV[p])
  if len == 0 or (horizon and horizon > tonumber(ARGV[p + 1])) then
    return capped_totals(cm, ch, cd, now_min, horizon, windows)
  end
  local keys = { cm, ch, cd }
  local values = { {}, {}, {} }
  local read = 0
  local i = p + 5
  for level = 1, 3 do
    local n = tonumber(ARGV[p + 1 + level])
    if n > 0 then
      values[level] = redis.call('HMGET', keys[level], unpack(ARGV, i, i + n - 1))
      read = read + n
      i = i + n
    end
  end
  local totals = {}
  for w = 1, #windows do
    local sum = 0
    local runs = tonumber(ARGV[i])
    i = i + 1
    for _ = 1, runs do
      local vals = values[tonumber(ARGV[i])]
      local first = tonumber(ARGV[i + 1])
      for q = first, first + tonumber(ARGV[i + 2]) - 1 do
        local v = vals[q]
        if v then
          sum = sum + tonumber(v)
        end
      end
      i = i + 3
    end
    totals[w] = sum
  end
  return totals, read
end
