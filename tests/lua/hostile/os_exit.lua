-- expect: ELUA
-- message: attempt to call a nil value (field 'exit')
os.exit(1)
