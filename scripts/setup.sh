#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Debian's redis-server and prometheus, a .venv with the locked dependencies
# (the project editable, with its test and ml extras), and the offline-generated tiny T5 model.
# A stamp of everything that decides what gets installed makes a re-run with nothing new a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
STAMP=.venv/.rayserve-setup
MODEL=.models/tiny-t5
want=$({ cat pyproject.toml components/constraints.txt serve_apps/requirements.txt tests/requirements.txt bench/requirements.txt \
           scripts/setup.sh; "$PY" -V; } | sha256sum | cut -d' ' -f1)
model_want=$(sha256sum scripts/tiny_t5.py | cut -d' ' -f1)
# The Prometheus Operator's schemas (compiled validators) for the tests, from npm when npm is here.
NODE_TOOLS=.tools/node
NPM_PACKAGES="@kubernetes-models/prometheus-operator@6.0.0"
node_ok() { ! command -v npm >/dev/null 2>&1 || [ "$(cat "$NODE_TOOLS/.installed" 2>/dev/null)" = "$NPM_PACKAGES" ]; }
# GCS fault tolerance starts a real Redis; `local.metrics` starts a real Prometheus.
DEBIAN_PACKAGES="redis-server:redis-server prometheus:prometheus"
missing=""
for pair in $DEBIAN_PACKAGES; do command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair##*:}"; done
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -z "$missing" ] && node_ok \
   && [ "$(cat "$MODEL/.generated-by" 2>/dev/null)" = "$model_want" ]; then
  exit 0
fi
say() { echo "set-up: $*" >&2; }
if [ -n "$missing" ]; then
  say "installing Debian's$missing (about 30 s)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv and installing the locked dependencies (ray, pulumi, CPU torch, transformers, ...):" \
      "about 1 minute with uv, 2 with pip, on a fresh 2-core machine"
  "$PY" -m venv .venv
elif [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  say "the locked dependencies changed: updating .venv (under a minute when most are installed)"
fi
# uv installs the same locked set as pip, faster; like pip it compiles the modules' bytecode at install
# (uv does not by default, and then every process of the first test run compiled what it imported: that
# run was minutes slower). It reads no pip configuration, so pip's find-links (where a
# machine keeps wheels such as a CPU-only torch) are passed on. Where uv cannot be installed or fails, pip
# does the install.
UV_VERSION=0.13.9
pip_find_links() {
  { printf '%s\n' ${PIP_FIND_LINKS:-}; .venv/bin/python -m pip config get global.find-links 2>/dev/null | tr ' ' '\n'; } \
    | grep -v '^$' | sort -u
}
install_with_uv() {
  .venv/bin/python -m pip install -q "uv==$UV_VERSION" 2>/dev/null || return 1
  local links=() link
  while read -r link; do links+=(--find-links "$link"); done < <(pip_find_links)
  .venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python "${links[@]}" -c components/constraints.txt -e ".[test,ml]"
}
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  if ! install_with_uv; then
    say "uv did not install the dependencies: installing them with pip (about 90 s)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c components/constraints.txt -e ".[test,ml]"
  fi
  echo "$want" > "$STAMP"
fi
if [ "$(cat "$MODEL/.generated-by" 2>/dev/null)" != "$model_want" ]; then
  say "generating the tiny T5 model the local stack's text app loads ($MODEL, about 10 s)"
  rm -rf "$MODEL"
  HF_HUB_DISABLE_PROGRESS_BARS=1 .venv/bin/python scripts/tiny_t5.py "$MODEL" >/dev/null
  echo "$model_want" > "$MODEL/.generated-by"
fi
if ! node_ok; then
  say "installing the Prometheus Operator's schemas from npm into $NODE_TOOLS (tests only, about 5 s)"
  mkdir -p "$NODE_TOOLS"
  npm install --silent --no-audit --no-fund --prefix "$NODE_TOOLS" $NPM_PACKAGES >/dev/null 2>&1
  echo "$NPM_PACKAGES" > "$NODE_TOOLS/.installed"
fi
say "done"
