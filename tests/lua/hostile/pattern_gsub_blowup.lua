-- expect: ELUA
-- message: pattern too costly
return ('a'):rep(60000):gsub('a-a-b', '')
