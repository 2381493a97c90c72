#!/usr/bin/env bash
# Set up, then run every test. Test files and PID files live under test-results/ (ignored); on exit the
# process groups recorded there are stopped (what the tests started, nothing else). "No tests ran" fails.
# One process: real-Ray tests side by side on two cores time out starting Ray. `-n 2 --dist loadscope` after
# the command runs modules in two processes (pytest-xdist), faster where the cores allow.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
cleanup() { .venv/bin/python -m rayserve_pulumi.node_agent.procs stop-all test-results || true; }
trap cleanup EXIT
for stack in stacks/Pulumi.*.yaml; do .venv/bin/rayserve validate "$stack" || exit 1; done
mkdir -p test-results
.venv/bin/python -m pytest --basetemp=test-results/tmp "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
