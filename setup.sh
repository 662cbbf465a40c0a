#!/usr/bin/env bash
# Fresh-machine entry point: make sure `make` exists, then hand over to the Makefile,
# which installs DPDK and the rest (apt-get), the venv and the build.
#   ./setup.sh demo   set up, replay the bundled sample traffic
#   ./setup.sh test   set up, run the tests
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v make >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q make
fi
exec make "${@:-demo}"
