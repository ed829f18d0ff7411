#!/usr/bin/env bash
# Installs the build tree into a scratch prefix (cmake --install --prefix,
# so the installed files must not depend on the configured prefix) and
# checks it as its users would (check_installed.sh).
# Usage: test_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
bash "$src/tests/install/check_installed.sh" "$tmp/prefix" "$src"
