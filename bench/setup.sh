#!/usr/bin/env bash
# The benchmarks' own set-up: the project's (scripts/setup.sh), Debian's wrk, and the `bench` extra (plot).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v wrk >/dev/null 2>&1; then
  echo "bench set-up: installing Debian's wrk (a C HTTP load generator, about 10 s)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
.venv/bin/python -m pip install -q -e ".[bench]"
