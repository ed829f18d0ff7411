-- expect: ELUA
-- message: bad module name
require '../../../etc/passwd'
