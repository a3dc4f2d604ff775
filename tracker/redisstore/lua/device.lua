-- device: block or unblock a device. ARGV: 1 now, 2 device id, 3 blocked (0|1), 4 retention
-- Returns {'missing'} or {'ok', closed...}: blocking ends the device's active sessions.
local now, devid, blocked, ret = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local raw = redis.call('HGET', K_DEVS, devid)
if not raw then
  return {'missing'}
end
local d = cjson.decode(raw)
d[D_BLOCKED] = blocked
redis.call('HSET', K_DEVS, devid, cjson.encode(d))
local out = {'ok'}
if blocked == 1 then
  for _, sid in ipairs(redis.call('ZRANGE', K_ACT, 0, -1)) do
    local sraw = redis.call('HGET', K_SESS, sid)
    if sraw then
      local r = cjson.decode(sraw)
      if r[S_END] == 0 and r[S_DEV] == devid then
        table.insert(out, close(sid, r, now, 'device_blocked'))
      end
    end
  end
end
expire_all(ret)
return out
