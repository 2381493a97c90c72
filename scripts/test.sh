#!/usr/bin/env bash
# Set up, then run every test. Test files and PID files live under test-results/ (ignored); on exit the
# process groups recorded there are stopped (what the tests started, nothing else). "No tests ran" fails.
# Tests run in 2 processes (pytest-xdist): the real-Ray tests one after the other in one of them, the mock
# tests module by module beside them (tests/conftest.py). `-n 0` after the command runs all in one.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
cleanup() { .venv/bin/python -m rayserve_pulumi.node_agent.procs stop-all test-results || true; }
trap cleanup EXIT
for stack in stacks/Pulumi.*.yaml; do .venv/bin/rayserve validate "$stack" || exit 1; done
mkdir -p test-results
.venv/bin/python -m pytest --basetemp=test-results/tmp -n 2 --dist loadgroup "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
