#!/usr/bin/env bash
# Rebuild the extensions and swap them into dataplane/ by rename, so a process that has
# the old .so mapped (a running forwarder, a benchmark) keeps its file.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY setup.py -q build_ext --build-lib build/stage >/dev/null
for so in build/stage/dataplane/*.so; do
  cp "$so" "dataplane/.$(basename "$so").new"
  mv -f "dataplane/.$(basename "$so").new" "dataplane/$(basename "$so")"
done
