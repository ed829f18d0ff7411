-- expect: ELIMIT
-- message: instruction limit
::top:: do local x = 1 end goto top
