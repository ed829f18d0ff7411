-- expect: ELIMIT
-- message: instruction limit
return (('x'):rep(100)):gsub('x', function() while true do end end)
