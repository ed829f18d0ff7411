-- expect: ELUA
-- message: close failed
do
  local x <close> = setmetatable({}, { __close = function() error('close failed') end })
end
