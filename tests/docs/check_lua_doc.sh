#!/usr/bin/env bash
# Fails when a function the Lua API registers is not in docs/lua.md: the
# keel module's functions (the luaL_Reg tables of lua/api.c, under the
# names keel.<area>.<name>, and the fields keeli_open_keel sets, as
# keel.<name>), the keel.view methods (lua/view.c, as v:<name>), the ctx
# methods of a strategy (lua/strategy.c, as ctx:<name> or ctx.<name>) and
# what the loadable module adds (bindings/lua/keel_module.c: keel.<name>
# and the panel's methods, as panel:<name>). The names are read from the
# registration code, so a function added there without documentation
# fails this test.
# Usage: check_lua_doc.sh SOURCE_DIR
set -uo pipefail
src=$1
doc=$src/docs/lua.md
api=$src/lua/api.c
view=$src/lua/view.c
strat=$src/lua/strategy.c
mod=$src/bindings/lua/keel_module.c
for f in "$doc" "$api" "$view" "$strat" "$mod"; do
  test -f "$f" || { echo "missing $f"; exit 1; }
done

# The names of a luaL_Reg table NAME in FILE: its {"name", fn} entries.
reg_names() {
  awk -v t="$2" '$0 ~ ("luaL_Reg " t "\\[\\] *= *\\{") { on = 1 } on { print } on && /\};/ { exit }' "$1" |
    grep -o '{"[A-Za-z_][A-Za-z0-9_]*",' | tr -d '{",'
}

want=()   # every string that must appear in docs/lua.md
add() {   # add KIND NAMES...: KIND is what the names were read as, for messages
  local kind=$1
  shift
  if [ $# -eq 0 ]; then
    echo "no $kind found: the registration code changed shape; update $0"
    exit 1
  fi
  want+=("$@")
}

# keel.<area>.<name>: the areas come from keeli_open_keel's subs[] table
# ({"estimate", ESTIMATE}, ...).
pairs=$(awk '/^int keeli_open_keel/ { on = 1 } on { print } on && /^}/ { exit }' "$api" |
        grep -o '{"[a-z_]*", [A-Z_]*}' | tr -d '{},"')
[ -n "$pairs" ] || { echo "no keel.<area> tables found in $api"; exit 1; }
while read -r area table; do
  mapfile -t names < <(reg_names "$api" "$table")
  add "functions of keel.$area ($table)" "${names[@]/#/keel.$area.}"
done <<<"$pairs"

# keel.<name>: what keeli_open_keel sets on the module itself.
mapfile -t names < <(awk '/^int keeli_open_keel/ { on = 1 } on { print } on && /^}/ { exit }' "$api" |
                     grep -o 'lua_setfield(L, -2, "[a-z_]*")' | grep -o '"[a-z_]*"' | tr -d '"')
add "fields of the keel module" "${names[@]/#/keel.}"

# v:<name>: the view methods.
mapfile -t names < <(reg_names "$view" METHODS)
add "keel.view methods" "${names[@]/#/v:}"

# ctx:<name> (or ctx.<name>): the methods a strategy's ctx gets.
mapfile -t ctxnames < <(awk '/} M\[\] = \{/ { on = 1 } on { print } on && /};/ { exit }' "$strat" |
                        grep -o '{"[a-z_]*",' | tr -d '{",')
[ ${#ctxnames[@]} -gt 0 ] || { echo "no ctx methods found in $strat"; exit 1; }

# keel.<name> of the loadable module (a C function set on the module) and
# the panel's methods.
mapfile -t names < <(awk '/lua_pushcfunction\(L, l_[a-z_]*\);/ { fn = 1; next }
                          fn && match($0, /lua_setfield\(L, -2, "[a-z_]*"\)/) {
                            s = substr($0, RSTART, RLENGTH); gsub(/.*-2, "|"\)/, "", s); print s }
                          { fn = 0 }' "$mod")
add "functions of the loadable module" "${names[@]/#/keel.}"
mapfile -t names < <(reg_names "$mod" methods)
add "panel methods" "${names[@]/#/panel:}"

# NAME mentioned as a whole name (keel.policy.band, not only in
# keel.policy.band_breached).
mentioned() { grep -qE -- "$(sed 's/[.]/\\./g' <<<"$1")([^A-Za-z0-9_]|\$)" "$doc"; }
missing=()
for w in "${want[@]}"; do
  mentioned "$w" || missing+=("$w")
done
for n in "${ctxnames[@]}"; do
  mentioned "ctx:$n" || mentioned "ctx.$n" || missing+=("ctx:$n")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "docs/lua.md does not mention: ${missing[*]}"
  exit 1
fi
echo "docs/lua.md mentions all $((${#want[@]} + ${#ctxnames[@]})) Lua functions the code registers"
