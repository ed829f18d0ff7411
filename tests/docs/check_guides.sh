#!/usr/bin/env bash
# Runs the getting-started guides (docs/start-*.md) as a reader would, so
# they cannot silently rot. Each guide runs in a scratch folder laid out
# like a clone of the repository after its build (data/samples/,
# strategies/, examples/ copied, build/ pointing at the build tree), with
# HOME set to that folder:
#   - a fenced block right after a line `<!-- file: NAME -->` is written to
#     NAME (a C program, a Lua strategy, a JSON file) at that point;
#   - every ```sh block is run, in the guide's order, by one bash with
#     `set -euo pipefail`, so a command that fails fails the test;
#   - a ```sh block right after `<!-- needs: PATH -->` runs only when PATH
#     exists in the source tree (the example service).
# Other blocks (```c, ```json, ```text without a file line) are only read.
# Skipped (exit 77) when a tool the guides use is missing, except under
# CI=true, where that is a failure (.ci/setup installs them).
# With KEEL_GUIDE_LOG=PREFIX each guide's output is kept in PREFIX.<guide>.
# Usage: check_guides.sh SOURCE_DIR BUILD_DIR [GUIDE.md ...]
set -uo pipefail
src=$1
build=$2
shift 2
if [ $# -gt 0 ]; then guides=("$@"); else guides=("$src"/docs/start-*.md); fi

missing=()
for tool in cc pkg-config sqlite3 lua5.4 cmake awk; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "the guides need ${missing[*]} (CI=true: .ci/setup installs them)"
    exit 1
  fi
  echo "the guides need ${missing[*]}: not checked"
  exit 77
fi
test -x "$build/cli/keel" || { echo "no $build/cli/keel: build keel first"; exit 1; }

# The script of one guide on stdout: file blocks become here-documents,
# sh blocks are copied, each preceded by a marker naming its line.
extract() {
  awk -v guide="$1" -v src="$src" '
    /^<!-- file: [^ ]+ -->$/ { file = $3; next }
    /^<!-- needs: [^ ]+ -->$/ { needs = $3; next }
    /^```/ && !inblock {
      inblock = 1; lang = substr($0, 4); start = NR
      if (file != "") {
        mode = "file"
        printf "echo \"## %s:%d: %s\" >&2\n", guide, NR, file
        printf "mkdir -p \"$(dirname %s)\"\ncat > %s <<'\''KEEL_GUIDE_EOF'\''\n", file, file
      } else if (lang == "sh") {
        mode = "sh"
        printf "echo \"## %s:%d\" >&2\n", guide, NR
        if (needs != "") printf "if [ -e \"%s/%s\" ]; then\n", src, needs
      } else {
        mode = "skip"
      }
      next
    }
    /^```/ && inblock {
      if (mode == "file") print "KEEL_GUIDE_EOF"
      if (mode == "sh" && needs != "")
        printf "else echo \"%s:%d: skipped: %s is not in the source tree\" >&2; fi\n", guide, start, needs
      inblock = 0; file = ""; needs = ""; mode = ""
      next
    }
    inblock && mode != "skip" { print }
    !inblock && !/^[[:space:]]*$/ { file = ""; needs = "" }
  ' "$2"
}

status=0
tmp=
trap 'if [ -n "$tmp" ]; then rm -rf "$tmp"; fi' EXIT
for g in "${guides[@]}"; do
  name=docs/$(basename "$g")
  tmp=$(mktemp -d)
  mkdir -p "$tmp/data"
  cp -R "$src/data/samples" "$tmp/data/samples"
  cp -R "$src/strategies" "$tmp/strategies"
  if [ -d "$src/examples" ]; then cp -R "$src/examples" "$tmp/examples"; fi
  ln -s "$(cd "$build" && pwd)" "$tmp/build"
  {
    echo "set -euo pipefail"
    echo "cd \"$tmp\""
    extract "$name" "$g"
  } > "$tmp/.guide.sh"
  if ! grep -qE '^echo "## [^ ]+:[0-9]+" >&2$' "$tmp/.guide.sh"; then
    echo "$name: no sh block found"
    status=1
  fi
  SECONDS=0
  if (cd "$tmp" && env -u KEEL_STRATEGY_PATH -u PKG_CONFIG_PATH -u LUA_CPATH -u LUA_PATH HOME="$tmp" \
        bash "$tmp/.guide.sh") > "$tmp/.log" 2>&1; then
    echo "$name: every snippet ran (${SECONDS} s)"
  else
    rc=$?
    echo "$name: a snippet failed (status $rc); the last block started at the last '##' line:"
    tail -40 "$tmp/.log"
    status=1
  fi
  if [ -n "${KEEL_GUIDE_LOG:-}" ]; then cp "$tmp/.log" "$KEEL_GUIDE_LOG.$(basename "$g" .md)"; fi
  rm -rf "$tmp"
done
exit $status
