#!/usr/bin/env bash
# Builds the Debian package from the build tree (cpack, no second build),
# checks its control fields and contents, installs it with dpkg into a
# scratch root (its own dpkg database), checks the installed keel as its
# users would (check_installed.sh: pkg-config, find_package, the example
# service, lua5.4), and removes it again, leaving nothing behind.
# Usage: test_package.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(realpath "$1")
src=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_package: $*" >&2; exit 1; }
for tool in cpack dpkg dpkg-deb dpkg-query readelf ldconfig; do
  command -v "$tool" >/dev/null || fail "$tool not found (apt-get install dpkg-dev binutils cmake)"
done

# -- build it
if ! cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/out" > "$tmp/cpack.log" 2>&1; then
  cat "$tmp/cpack.log" >&2
  fail "cpack failed"
fi
debs=("$tmp"/out/*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "cpack made ${#debs[@]} packages: ${debs[*]}"
deb=${debs[0]}

# -- its control fields
field() { dpkg-deb -f "$deb" "$1"; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[ "$(field Package)" = keel ] || fail "Package is '$(field Package)'"
[ "$(field Version)" = "$version-1" ] || fail "Version is '$(field Version)', not $version-1"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture is '$(field Architecture)'"
[ "$(basename "$deb")" = "keel_${version}-1_$(dpkg --print-architecture).deb" ] || fail "file name $(basename "$deb")"
[[ $(field Maintainer) =~ ^[^\<]+\ \<[^\>]+\>$ ]] || fail "Maintainer is '$(field Maintainer)', not 'Name <address>'"
[ -n "$(field Description)" ] || fail "no Description"
dpkg-deb -I "$deb" shlibs | grep -q "^libkeel 0 keel (>= $version-1)$" || fail "no shlibs line for libkeel.so.0"
depends=$(field Depends)
[ -n "$depends" ] || fail "no Depends"

# Every Depends entry is a package installed here in a version that
# satisfies it (the names are real, the versions not above Debian's).
satisfied() { # "name (op version)" -> 0 when installed and satisfying
  local name op ver inst
  read -r name op ver <<< "$(echo "$1" | sed 's/[()]//g')"
  inst=$(dpkg-query -W -f='${Status} ${Version}\n' "$name" 2>/dev/null | sed -n 's/^install ok installed //p' | head -1)
  [ -n "$inst" ] || return 1
  [ -z "$op" ] || dpkg --compare-versions "$inst" "$op" "$ver"
}
IFS=',' read -ra groups <<< "$depends"
for group in "${groups[@]}"; do
  ok=1
  IFS='|' read -ra alts <<< "$group"
  for alt in "${alts[@]}"; do
    alt=$(echo "$alt" | xargs)
    [[ $alt == *.so.* ]] && continue # a virtual soname package
    if satisfied "$alt"; then ok=0; break; fi
  done
  [ $ok -eq 0 ] || fail "Depends '$group' is not satisfied by an installed package"
done

# -- its contents: everything under the configured prefix, nothing else
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' > "$tmp/files"
bin=$(grep '/bin/keel$' "$tmp/files" || true)
[ -n "$bin" ] || fail "no bin/keel in the package"
prefix=${bin%/bin/keel}
[ "$prefix" = "$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")" ] ||
  fail "the package installs under $prefix, not the configured prefix"
while read -r f; do
  case $f in
    / | "$prefix"/*) ;;
    *) [[ "$prefix/" == "$f"* ]] || fail "$f is outside $prefix" ;; # or a folder above it
  esac
done < "$tmp/files"
l=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$build/CMakeCache.txt")
want=(bin/keel "$l/libkeel.so" "$l/libkeel.so.0" "$l/libkeel.so.$version" "$l/libkeel.a"
      "$l/pkgconfig/keel.pc" "$l/cmake/keel/keelConfig.cmake" "$l/cmake/keel/keelConfigVersion.cmake"
      "$l/cmake/keel/keelTargets.cmake" "$l/lua/5.4/keel.so"
      share/keel/strategies/templates/standard.lua share/keel/strategies/templates/questionnaire.lua
      share/doc/keel/examples/advice_service.c share/doc/keel/examples/CMakeLists.txt)
for h in "$src"/include/keel/*.h; do want+=("include/keel/$(basename "$h")"); done
for w in "${want[@]}"; do
  grep -q -x -F "$prefix/$w" "$tmp/files" || fail "the package has no $prefix/$w"
done
! grep -q -e '/test_' -e '/bench_' -e '\.o$' "$tmp/files" || fail "test, benchmark or object files in the package"
# under /usr or /usr/local the Lua module is where Debian's lua5.4 looks
luadir=$(dirname "$(grep '/lua/5.4/keel.so$' "$tmp/files")")
if [ "$prefix" = /usr ] || [ "$prefix" = /usr/local ]; then
  lua5.4 -e 'print(package.cpath)' | tr ';' '\n' | grep -q -x -F "$luadir/?.so" ||
    fail "$luadir is not in lua5.4's package.cpath"
fi

# -- install it into a scratch root with its own dpkg database (the
# dependencies are this machine's, so they are not in that database)
root=$tmp/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
: > "$root/var/lib/dpkg/status"
# The maintainer scripts run outside the scratch root (chrootless): CPack's
# postinst and postrm (for libraries under /usr/lib) only call ldconfig,
# which is made a no-op here so that this machine's cache is left alone;
# any other script would be a surprise.
dpkg-deb --ctrl-tarfile "$deb" | tar -t | sed 's|^\./||' | grep -v -x -E '|control|md5sums|shlibs|triggers|postinst|postrm' &&
  fail "unexpected control files in the package"
for script in postinst postrm; do
  if dpkg-deb --ctrl-tarfile "$deb" | tar -t | grep -q -x "./$script"; then
    dpkg-deb -I "$deb" "$script" | grep -v -E '^(#!/bin/sh|set -e|if \[ "\$1" = "(configure|remove)" \]; then|fi|[[:space:]]*ldconfig|)$' &&
      fail "the $script does more than run ldconfig"
  fi
done
mkdir "$tmp/stub"
printf '#!/bin/sh\nexit 0\n' > "$tmp/stub/ldconfig"
chmod +x "$tmp/stub/ldconfig"
scratch_dpkg() {
  PATH="$tmp/stub:$PATH:/usr/sbin:/sbin" \
    dpkg --root="$root" --log=/dev/null --force-not-root --force-depends --force-script-chrootless "$@"
}
scratch_dpkg -i "$deb" > "$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -i failed"; }
dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' keel | grep -q "install ok installed" ||
  fail "keel is not installed in the scratch root"

# Each library the packaged programs and libraries load (but libkeel, and
# Lua, whose symbols keel.so takes from the interpreter) belongs to a
# package that Depends names, or that a package it names depends on; and
# none of them has a run path.
for group in "${groups[@]}"; do
  IFS='|' read -ra alts <<< "$group"
  for alt in "${alts[@]}"; do
    name=$(echo "$alt" | awk '{print $1}')
    echo "$name"
    dpkg-query -W -f='${Depends}\n' "$name" 2>/dev/null | tr ',|' '\n\n' | awk 'NF {print $1}'
  done
done | sort -u > "$tmp/covered"
: > "$tmp/needed"
while read -r f; do
  case $f in */bin/* | *.so | *.so.*) ;; *) continue ;; esac
  [ -f "$root$f" ] && [ ! -L "$root$f" ] || continue
  ! readelf -d "$root$f" | grep -q -E '\((RPATH|RUNPATH)\)' || fail "$f has a run path"
  readelf -d "$root$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sed "s|\$| $f|" >> "$tmp/needed"
done < "$tmp/files"
[ -s "$tmp/needed" ] || fail "no packaged program or library needs any library (readelf)"
ldconfig -p > "$tmp/ldcache"
for soname in $(awk '{print $1}' "$tmp/needed" | sort -u); do
  [[ $soname == libkeel.so.* ]] && continue
  path=$(awk -v s="$soname" '$1 == s && /x86-64|64bit/ {print $NF; exit}' "$tmp/ldcache")
  [ -n "$path" ] || fail "$(grep "^$soname " "$tmp/needed" | head -1 | cut -d' ' -f2) needs $soname, which this machine does not have"
  owner=
  for p in "$(realpath "$path")" "$path" "/usr$path" "${path#/usr}"; do
    owner=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$owner" ] && break
  done
  [ -n "$owner" ] || fail "no package owns $path ($soname)"
  grep -q -x -F "$owner" "$tmp/covered" ||
    fail "$(grep "^$soname " "$tmp/needed" | head -1 | cut -d' ' -f2) needs $soname from $owner, which Depends ($depends) does not bring"
done

bash "$src/tests/install/check_installed.sh" "$root$prefix" "$src"

# -- and remove it: nothing of it is left
scratch_dpkg -r keel > "$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -r failed"; }
left=$(cd "$root" && find . -path ./var -prune -o -type f -print)
[ -z "$left" ] || fail "files left after dpkg -r: $left"
echo "keel_${version}-1 installs with dpkg, works (check_installed.sh) and removes cleanly; Depends: $depends"
