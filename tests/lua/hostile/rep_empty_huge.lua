-- expect: ELUA
-- message: rep answered
-- 5.4.4 would loop 2^62 times in C
local s = string.rep('', 1 << 62, '')
assert(#s == 0)
error('rep answered')
