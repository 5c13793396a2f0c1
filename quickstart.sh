#!/usr/bin/env bash
# Quick start: `./quickstart.sh demo` installs what is missing, builds and runs the demo;
# `./quickstart.sh test` installs, builds and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-demo}"
case "$what" in
  demo|test) ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
scripts/install-deps.sh
scripts/build.sh
if [ "$what" = demo ]; then
  exec build/bin/tandem demo
else
  cd build && exec ctest --output-on-failure -j1 --timeout 600
fi
