-- expect: ELUA
-- message: bad argument #1 to 'rawset' (table expected, got string)
rawset(getmetatable(''), '__index', {})
