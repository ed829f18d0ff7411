-- expect: ELUA
-- message: attempt to call a nil value (field 'dump')
local f = function() return 1 end
return load(string.dump(f))
