-- POST /v1/usage: one realtime report of 1 s of speech, spread over 1,000 users.
local n = 0
request = function()
  n = n + 1
  local body = '{"uid":"bench' .. (n % 1000) .. '","lane":"realtime","speech_ms":1000,"stt_ms":1000}'
  return wrk.format("POST", "/v1/usage", {["Authorization"] = "Bearer bench-key", ["Content-Type"] = "application/json"}, body)
end
