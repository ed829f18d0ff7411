-- expect: ELUA
-- message: only "count" is allowed
collectgarbage('stop')
