-- GET /v1/users/{uid}/decision over 1,000 users who already have usage.
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/users/bench" .. (n % 1000) .. "/decision", {["Authorization"] = "Bearer bench-key"})
end
