#!/usr/bin/env bash
# Builds and installs the Lua module with LuaRocks from a copy of the
# source tree (luarocks make, as a user would from a checkout) into a
# scratch tree, then runs a backtest through it with lua5.4 and checks it
# against the keel command's. Skips (77) when luarocks is missing, unless
# CI=true. Usage: test_luarocks.sh SOURCE_DIR VERSION KEEL_COMMAND
set -euo pipefail
src=$(realpath "$1")
version=$2
keel=$3
fail() { echo "test_luarocks: $*" >&2; exit 1; }
if ! command -v luarocks >/dev/null; then
  [ "${CI:-}" = true ] && fail "luarocks not found (apt-get install luarocks; .ci/setup installs it)"
  echo "test_luarocks: skipped: luarocks not found (apt-get install luarocks)"
  exit 77
fi
lua=$(command -v lua5.4) || fail "lua5.4 not found (apt-get install lua5.4)"
rockspec=rockspecs/keel-$version-1.rockspec
[ -f "$src/$rockspec" ] || fail "no $rockspec for version $version (rename the rockspec and its version field)"
grep -q "^version = \"$version-1\"$" "$src/$rockspec" || fail "$rockspec does not say version = \"$version-1\""

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# luarocks make builds in the folder it runs in (build.luarocks/): a copy,
# without build folders, so the source tree is left alone
mkdir "$tmp/src"
tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$tmp/src" -xf -
start=$(date +%s)
if ! (cd "$tmp/src" && CMAKE_BUILD_PARALLEL_LEVEL=2 luarocks --lua-version 5.4 --tree "$tmp/tree" make "$rockspec") \
     > "$tmp/luarocks.log" 2>&1; then
  tail -40 "$tmp/luarocks.log" >&2
  fail "luarocks make $rockspec failed"
fi
echo "luarocks make took $(($(date +%s) - start)) s"

# only the module is deployed: no library, headers or command in the tree
mod=$tmp/tree/lib/lua/5.4/keel.so
[ -f "$mod" ] || fail "no lib/lua/5.4/keel.so in the rocks tree"
extra=$(cd "$tmp/tree" && find . -type f ! -path ./lib/lua/5.4/keel.so ! -path './lib/luarocks/*')
[ -z "$extra" ] || fail "luarocks deployed more than keel.so: $extra"
luarocks --lua-version 5.4 --tree "$tmp/tree" list --porcelain | grep -q "^keel	$version-1	installed" ||
  fail "luarocks list does not show keel $version-1 installed"

# the module through the tree's paths (luarocks path), a backtest, against the command
eval "$(luarocks --lua-version 5.4 --tree "$tmp/tree" path)"
got=$(cd "$src" && "$lua" -e '
  local where = package.searchpath("keel", package.cpath)
  local keel = require "keel"
  local bt = keel.backtest { prices = "data/samples/multi_asset.csv", assets = { "EQUITY", "BOND" },
                             weights = { 0.6, 0.4 }, rebalance = "quarterly", cost_bps = 10, fee = 1,
                             capital = 100000 }
  io.write(string.format("%s %s final value %.2f trades %d", where, keel.version, bt.final_value, bt.ntrades))')
want_value=$(cd "$src" && "$keel" backtest --prices data/samples/multi_asset.csv --weights EQUITY=0.6,BOND=0.4 \
             --rebalance quarterly --cost-bps 10 --fee 1 --capital 100000 |
             awk '/final value/ {v = $3} /^ *trades / {t = $2} END {printf "final value %s trades %s", v, t}')
[ "$got" = "$mod $version $want_value" ] || fail "lua5.4 with the rock's keel.so printed '$got', expected '$mod $version $want_value'"
echo "the keel rock builds with luarocks make, installs keel.so alone, and its backtest matches keel backtest ($want_value)"
