-- report: record a violation a user reported ("this wasn't me").
-- ARGV: 1 now, 2 retention, 3 ip, 4 location text, 5 device id, 6 session id,
-- 7 action. Returns the violation record.
local now, ret = tonumber(ARGV[1]), tonumber(ARGV[2])
local rec = violation(now, 'reported', {max = 0}, 1, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
expire_all(ret)
return rec
