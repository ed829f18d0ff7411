#!/usr/bin/env bash
# Installs the build tree into a scratch prefix and builds a small program
# against it three ways: pkg-config (shared), pkg-config --static, and a
# CMake project with find_package(keel). Usage: test_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
test -f "$prefix/include/keel/keel.h"
test -x "$prefix/bin/keel"
libdir=$(dirname "$(find "$prefix" -name 'libkeel.so' | head -1)")
test -n "$libdir"
export PKG_CONFIG_PATH=$libdir/pkgconfig
want="keel $(pkg-config --modversion keel) total_return -0.0100"

cc -std=c11 -Wall -Werror "$src/tests/install/hello.c" -o "$tmp/hello_pc" \
   $(pkg-config --cflags --libs keel) -Wl,-rpath,"$libdir"
got=$("$tmp/hello_pc")
[ "$got" = "$want" ] || { echo "pkg-config build printed '$got', expected '$want'"; exit 1; }

cc -std=c11 -Wall -Werror "$src/tests/install/hello.c" -o "$tmp/hello_pc_static" \
   $(pkg-config --cflags keel) "$libdir/libkeel.a" $(pkg-config --static --libs-only-l --libs-only-other keel | sed 's/-lkeel//')
got=$("$tmp/hello_pc_static")
[ "$got" = "$want" ] || { echo "static build printed '$got'"; exit 1; }

cmake -S "$src/tests/install/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
for exe in hello_shared hello_static; do
  got=$("$tmp/consumer/$exe")
  [ "$got" = "$want" ] || { echo "find_package build $exe printed '$got'"; exit 1; }
done
# The Lua module: lua5.4 loads the installed keel.so from the prefix's
# lib/lua/5.4, the folder Debian's lua5.4 searches under /usr/local.
lua=$(command -v lua5.4 || true)
[ -n "$lua" ] || { echo "lua5.4 not found (apt-get install lua5.4)"; exit 1; }
test -f "$prefix/lib/lua/5.4/keel.so"
got=$(LUA_CPATH="$prefix/lib/lua/5.4/?.so" LUA_PATH='' "$lua" -e '
  local keel = require "keel"
  local r = keel.optimize.min_variance(keel.matrix{{0.04, 0}, {0, 0.01}})
  io.write(string.format("keel %s %.4f %.4f", keel.version, r.weights[1], r.weights[2]))')
[ "$got" = "keel $(pkg-config --modversion keel) 0.2000 0.8000" ] || { echo "lua5.4 with the installed keel.so printed '$got'"; exit 1; }
echo "installed keel works through pkg-config (shared and static), find_package (shared and static) and lua5.4 (require \"keel\")"
