-- ARGV: now (after presence_clean.lua)
clean(ARGV[1])
return redis.call('hgetall', KEYS[1])
