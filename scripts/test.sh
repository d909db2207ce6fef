#!/usr/bin/env bash
# The test command: sets up, then runs unit tests (beside the code) and integration tests (test/)
# against real kernel features, real Redis and real tools. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" != 0 ]; then
  echo "jiffy tests need root (namespaces, cgroups, overlayfs). Run: sudo npm test" >&2
  exit 1
fi
export JIFFY_LOG_LEVEL=${JIFFY_LOG_LEVEL:-warn}
mapfile -t files < <(find dist/src dist/test -name '*.test.js' 2>/dev/null | sort)
if [ "${#files[@]}" = 0 ]; then echo "no test files found under dist/" >&2; exit 1; fi
# One file at a time: tests share the kernel (cgroups, mounts) and a 2-core machine.
exec node --test --test-concurrency=1 --test-timeout=600000 "${files[@]}"
