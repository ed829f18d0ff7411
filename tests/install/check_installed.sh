#!/usr/bin/env bash
# Checks an installed keel under PREFIX as its users would use it: a small
# program built through pkg-config (shared and static) and through
# find_package(keel) (shared and static); the example service installed
# with the docs, built through pkg-config and through its own
# CMakeLists.txt, run on two requests (one bad) with LD_LIBRARY_PATH into
# the prefix, its advice matching the installed keel command's; and the Lua
# module loaded by lua5.4 from the prefix.
# Usage: check_installed.sh PREFIX SOURCE_DIR  (used by test_install.sh
# and test_package.sh)
set -euo pipefail
prefix=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check_installed: $*" >&2; exit 1; }

test -f "$prefix/include/keel/keel.h" || fail "no include/keel/keel.h under $prefix"
test -x "$prefix/bin/keel" || fail "no bin/keel under $prefix"
lib=$(find "$prefix" -name libkeel.so.0 | head -1)
[ -n "$lib" ] || fail "no libkeel.so.0 under $prefix"
libdir=$(dirname "$lib")
test -f "$libdir/libkeel.a" || fail "no libkeel.a beside $lib"
export PKG_CONFIG_PATH=$libdir/pkgconfig
version=$(pkg-config --modversion keel)
want="keel $version total_return -0.0100"

# -- a small program: pkg-config shared and static, find_package shared and static
cc -std=c11 -Wall -Werror "$src/tests/install/hello.c" -o "$tmp/hello_pc" \
   $(pkg-config --cflags --libs keel) -Wl,-rpath,"$libdir"
got=$("$tmp/hello_pc")
[ "$got" = "$want" ] || fail "pkg-config build printed '$got', expected '$want'"

cc -std=c11 -Wall -Werror "$src/tests/install/hello.c" -o "$tmp/hello_pc_static" \
   $(pkg-config --cflags keel) "$libdir/libkeel.a" $(pkg-config --static --libs-only-l --libs-only-other keel | sed 's/-lkeel//')
got=$("$tmp/hello_pc_static")
[ "$got" = "$want" ] || fail "static build printed '$got'"

cmake -S "$src/tests/install/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
for exe in hello_shared hello_static; do
  got=$("$tmp/consumer/$exe")
  [ "$got" = "$want" ] || fail "find_package build $exe printed '$got'"
done

# -- the example service, from the installed docs
ex=$prefix/share/doc/keel/examples
test -f "$ex/advice_service.c" -a -f "$ex/CMakeLists.txt" || fail "no examples under $prefix/share/doc/keel"
cc -std=c11 -Wall -Wextra -Werror -O2 "$ex/advice_service.c" -o "$tmp/advice_service_pc" \
   $(pkg-config --cflags --libs keel jansson) -pthread
cmake -S "$ex" -B "$tmp/example" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/example" >/dev/null
templ=$prefix/share/keel/strategies/templates/standard.lua
test -f "$templ" || fail "no standard template under $prefix/share/keel"
samples=$src/data/samples
quotes='{"CASH": 127.5099, "BOND": 141.7317, "EQUITY": 216.9675, "EM_EQUITY": 179.8098, "GOLD": 1829.5233, "CRYPTO": 8614.107}'
printf '%s\n' "$quotes" > "$tmp/quotes.json"
{
  printf '{"id": "a", "profile": %s, "holdings": %s, "quotes": %s}\n' \
    "$(tr -d '\n' < "$samples/profile.json")" "$(tr -d '\n' < "$samples/holdings.json")" "$quotes"
  printf '{"id": "b", "profile": {"age": 12, "horizon": 5, "goal": "travel", "risk_score": 3}, "quotes": %s}\n' "$quotes"
} > "$tmp/requests.jsonl"
text=$("$prefix/bin/keel" advise --template "$templ" --profile "$samples/profile.json" \
       --holdings "$samples/holdings.json" --quotes "$tmp/quotes.json" --cost-bps 10 --text)
[ -n "$text" ] || fail "the installed keel advise printed no explanation"
for svc in "$tmp/advice_service_pc" "$tmp/example/advice_service"; do
  # the pkg-config build has no run path: LD_LIBRARY_PATH must find the
  # installed library, and that one, not another keel on the machine
  so=$(LD_LIBRARY_PATH="$libdir" ldd "$svc" | awk '$1 ~ /^libkeel\.so/ {print $3}')
  [ "$(realpath "$so")" = "$(realpath "$lib")" ] || fail "$svc loads libkeel from '$so', not $lib"
  LD_LIBRARY_PATH="$libdir" "$svc" -j 2 -c 10 "$templ" "$tmp/requests.jsonl" > "$tmp/out.jsonl" ||
    fail "$svc failed"
  [ "$(wc -l < "$tmp/out.jsonl")" -eq 2 ] || fail "$svc wrote $(wc -l < "$tmp/out.jsonl") lines for 2 requests"
  first=$(sed -n 1p "$tmp/out.jsonl")
  second=$(sed -n 2p "$tmp/out.jsonl")
  case $first in
    '{"line":1,"id":"a","advice":{"template":"standard","risk_score":8,'*'"explanation":"'"$text"'"}}') ;;
    *) fail "$svc's first response is not the advice keel advise gives: $first" ;;
  esac
  case $second in
    '{"line":2,"id":"b","error":{"status":"invalid argument","message":"profile: age'*) ;;
    *) fail "$svc's second response is not the error for age 12: $second" ;;
  esac
done

# -- the Lua module, where lua5.4 looks for C modules under the prefix
lua=$(command -v lua5.4 || true)
[ -n "$lua" ] || fail "lua5.4 not found (apt-get install lua5.4)"
mod=$(find "$prefix" -path '*/lua/5.4/keel.so' | head -1)
[ -n "$mod" ] || fail "no lua/5.4/keel.so under $prefix"
got=$(LUA_CPATH="$(dirname "$mod")/?.so" LUA_PATH='' "$lua" -e '
  local keel = require "keel"
  local r = keel.optimize.min_variance(keel.matrix{{0.04, 0}, {0, 0.01}})
  io.write(string.format("keel %s %.4f %.4f", keel.version, r.weights[1], r.weights[2]))')
[ "$got" = "keel $version 0.2000 0.8000" ] || fail "lua5.4 with the installed keel.so printed '$got'"
echo "installed keel under $prefix works through pkg-config (shared and static), find_package (shared and static), the example service (pkg-config and CMake builds) and lua5.4 (require \"keel\")"
