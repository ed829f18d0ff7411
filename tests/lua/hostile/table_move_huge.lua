-- expect: ELIMIT
-- message: instruction limit
-- a C loop of 1e15 steps, charged up front
table.move({}, 1, 1e15, 2)
