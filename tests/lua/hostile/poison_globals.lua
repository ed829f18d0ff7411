-- expect: ELUA
-- message: leftovers planted
-- globals are the chunk's own: nothing stays for the next script
x = 1
tostring = nil
string = { upper = function() return 'evil' end }
setmetatable = function() end
error('leftovers planted')
