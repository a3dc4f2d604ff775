-- alias: bind another token of the same login (a rotated session cookie, or
-- a second cookie the app sets at login) to a session. ARGV: 1 token hash,
-- 2 session id. Returns 1 if the session is active, 0 if it has ended (the
-- token is bound anyway, so it is refused as the session's end says: a
-- rotation racing a revocation cannot slip a fresh token past it) or is
-- unknown (nothing bound).
local raw = redis.call('HGET', K_SESS, ARGV[2])
if not raw then
  return 0
end
redis.call('HSET', K_TOK, ARGV[1], ARGV[2])
if cjson.decode(raw)[S_END] ~= 0 then
  return 0
end
return 1
