-- expect: ELUA
-- message: upvalue '_ENV'
-- no environment: no way to reach anything
load('return string', 'x', 't', nil)()
