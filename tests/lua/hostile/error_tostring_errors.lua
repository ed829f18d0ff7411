-- expect: ELUA
-- message: (error object is a table value)
error(setmetatable({}, { __tostring = function() error('nested') end, __name = 'evil' }))
