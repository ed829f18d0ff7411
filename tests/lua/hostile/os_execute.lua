-- expect: ELUA
-- message: attempt to call a nil value (field 'execute')
os.execute('touch /tmp/keel_pwned')
