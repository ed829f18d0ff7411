-- expect: ELUA
-- message: module 'socket.core' not found
local s = require 'socket.core'
