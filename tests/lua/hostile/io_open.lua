-- expect: ELUA
-- message: attempt to index a nil value (global 'io')
local f = io.open('/etc/passwd')
return f:read('a')
