-- expect: ELUA
-- message: pattern too costly
for w in ('a'):rep(10000):gmatch('(a*)(a*)b') do end
