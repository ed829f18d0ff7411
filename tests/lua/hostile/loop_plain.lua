-- expect: ELIMIT
-- message: instruction limit of 5000000 reached
while true do end
