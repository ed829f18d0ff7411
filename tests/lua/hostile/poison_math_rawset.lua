-- expect: ELUA
-- message: rawset: this table is read-only
rawset(math, 'floor', function() return 0 end)
