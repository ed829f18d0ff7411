-- expect: ELUA
-- message: cannot set 'upper': this table is read-only
string.upper = nil
