-- expect: ELUA
-- message: read-only
local keel = require 'keel'
keel.optimize.min_variance = function() return 'evil' end
