#!/usr/bin/env bash
# Builds the API reference (the docs target: Doxygen over every header in
# include/keel/, docs/Doxyfile.in) and fails on any Doxygen warning: an
# undocumented function, type, field, enum value or macro, a parameter or
# return value without its @param / @return, a reference that does not
# resolve. Skipped (exit 77) when doxygen is not installed, except under
# CI=true, where that is a failure (.ci/setup installs it).
# Usage: check_api_docs.sh CMAKE BUILD_DIR
set -uo pipefail
cmake=$1
build=$2
if ! command -v doxygen >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    echo "doxygen is not installed (CI=true: .ci/setup installs it)"
    exit 1
  fi
  echo "doxygen is not installed: the API reference is not checked (apt-get install doxygen)"
  exit 77
fi
out=$("$cmake" --build "$build" --target docs 2>&1)
rc=$?
if [ $rc -ne 0 ] || grep -qE '(warning|error):' <<<"$out"; then
  echo "$out"
  echo "the API reference has warnings (status $rc)"
  exit 1
fi
test -s "$build/docs/html/index.html" || { echo "no $build/docs/html/index.html"; exit 1; }
echo "API reference built without warnings: $build/docs/html/index.html"
