-- alias: bind another token of the same login (a rotated session cookie, or
-- a second cookie the app sets at login) to an active session.
-- ARGV: 1 token hash, 2 session id. Returns 1 if bound, 0 if the session
-- is unknown or has ended.
local raw = redis.call('HGET', K_SESS, ARGV[2])
if not raw then
  return 0
end
if cjson.decode(raw)[S_END] ~= 0 then
  return 0
end
redis.call('HSET', K_TOK, ARGV[1], ARGV[2])
return 1
