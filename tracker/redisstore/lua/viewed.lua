-- viewed: mark one violation (ARGV[1] = id) or all (ARGV[1] = '') viewed.
-- Changes nothing else: a restriction stays as it is.
-- Returns {'missing'} or {'ok', changed, unviewed left}.
local id = ARGV[1]
local ids
if id == '' then
  ids = redis.call('ZRANGE', K_VZ, 0, -1)
else
  if redis.call('HEXISTS', K_V, id) == 0 then
    return {'missing'}
  end
  ids = {id}
end
local changed = 0
for _, v in ipairs(ids) do
  local raw = redis.call('HGET', K_V, v)
  if raw then
    local r = cjson.decode(raw)
    if r[V_VIEWED] == 0 then
      r[V_VIEWED] = 1
      redis.call('HSET', K_V, v, cjson.encode(r))
      changed = changed + 1
    end
  end
end
local left = tonumber(redis.call('HGET', K_META, 'unviewed') or '0')
if changed > 0 then
  left = redis.call('HINCRBY', K_META, 'unviewed', -changed)
end
if left < 0 then
  redis.call('HSET', K_META, 'unviewed', 0)
  left = 0
end
return {'ok', changed, left}
