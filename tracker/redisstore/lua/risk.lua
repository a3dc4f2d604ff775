-- risk: record one risk finding of a user. Not prepended with the prelude:
-- its keys are its own.
-- KEYS: 1 findings (hash), 2 findings by time (zset), 3 signals per session
-- ("s:" id) and device ("d:" id).
-- ARGV: 1 now, 2 retention, 3 finding id, 4 record (JSON), 5 session id,
-- 6 device id, 7 signal, 8 cap.
-- Returns 1 when recorded, 0 when the session (and the device, if given)
-- already had the signal.
local now, ret, id, rec = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local sid, dev, sig, cap = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])

-- has: does the comma-separated list hold s?
local function has(list, s)
  return string.find(',' .. list .. ',', ',' .. s .. ',', 1, true) ~= nil
end

local function add(field)
  local cur = redis.call('HGET', KEYS[3], field) or ''
  if not has(cur, sig) then
    if cur == '' then
      cur = sig
    else
      cur = cur .. ',' .. sig
    end
    redis.call('HSET', KEYS[3], field, cur)
  end
end

local function known(field)
  return has(redis.call('HGET', KEYS[3], field) or '', sig)
end

if sid ~= '' and known('s:' .. sid) and (dev == '' or known('d:' .. dev)) then
  return 0
end
redis.call('HSET', KEYS[1], id, rec)
redis.call('ZADD', KEYS[2], now, id)
if sid ~= '' then
  add('s:' .. sid)
end
if dev ~= '' then
  add('d:' .. dev)
end
local n = redis.call('ZCARD', KEYS[2])
if n > cap then
  local old = redis.call('ZRANGE', KEYS[2], 0, n - cap - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - cap - 1)
  redis.call('HDEL', KEYS[1], unpack(old))
end
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], ret)
end
return 1
