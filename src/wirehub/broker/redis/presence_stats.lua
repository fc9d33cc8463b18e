-- ARGV: now (after presence_clean.lua)
clean(ARGV[1])
return {redis.call('zcard', KEYS[2]), redis.call('hlen', KEYS[3])}
