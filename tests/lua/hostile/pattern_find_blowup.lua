-- expect: ELUA
-- message: pattern too costly
return ('a'):rep(40):find(('a*'):rep(12) .. 'b')
