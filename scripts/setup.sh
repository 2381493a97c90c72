#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: system packages, .venv, the project and its pinned deps.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then   # GCS fault-tolerance tests start a real Redis
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
fi
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,ml]"
# The local stack's text app loads this offline-generated tiny T5 (no model hub is needed).
[ -f .models/tiny-t5/config.json ] || HF_HUB_DISABLE_PROGRESS_BARS=1 .venv/bin/python scripts/tiny_t5.py .models/tiny-t5 >/dev/null
