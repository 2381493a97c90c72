#!/usr/bin/env bash
# Set up, then run every test. Test files and PID files live under test-results/ (ignored); on exit the
# process groups recorded there are stopped (what the tests started, nothing else). "No tests ran" fails.
# The mock tests, which start no Ray, run throughout at a lower CPU priority (nice 10), beside the real-Ray
# tests in two phases: first those marked `timed`, whose verdict is relative to an unsaturated machine (a
# rollout gate's p99 ratio, a metric's scrape deadline), one at a time (the nice mock tests take only what
# they leave idle); then the others, which judge outcomes (answers, failed-request counts, state), in two
# pytest-xdist workers split by module, or by package where its modules share one stack (tests/conftest.py):
# a head starts once; the workers draw disjoint test ports.
# Each stream draws test ports from its own share.
# Naming tests, or -m, -k, -n, runs one process with those arguments.
set -uo pipefail
cd "$(dirname "$0")/.."
phase_start=$SECONDS
took() {  # one line per phase, so a CI log shows where its minutes went
  echo "===== $1: $((SECONDS - phase_start)) s =====" >&2
  phase_start=$SECONDS
}
bash scripts/setup.sh || exit 1
took "set-up"
cleanup() {
  [ -n "${mock_pid:-}" ] && kill "$mock_pid" 2>/dev/null
  .venv/bin/python -m rayserve_pulumi.node_agent.procs stop-all test-results || true
}
trap cleanup EXIT
printf '%s\n' stacks/Pulumi.*.yaml | xargs -P 2 -n 1 .venv/bin/rayserve validate || exit 1  # two at a time
took "validating the shipped stacks"
mkdir -p test-results
rm -f test-results/reliability.json  # each real-Ray session adds its scenarios' reports

pytest_rc() {  # pytest's status, with "collected no tests" (5) a failure
  if [ "$1" -eq 5 ]; then echo "pytest collected no tests ($2): failing" >&2; return 1; fi
  return "$1"
}

split=1
for arg in "$@"; do
  case "$arg" in
    -m|-m*|-k|-k*|-n|-n*|--numprocesses*|--dist*) split=0 ;;
    -*) ;;
    *) split=0 ;;  # a test path or node id
  esac
done
if [ "$split" -eq 0 ]; then
  .venv/bin/python -m pytest --basetemp=test-results/tmp "$@"
  pytest_rc $? "pytest $*"
  exit $?
fi

RAYSERVE_TEST_SHARE=1/2 nice -n 10 .venv/bin/python -m pytest -p no:cacheprovider --basetemp=test-results/tmp-mock \
  -m "not ray" "$@" > test-results/mock-tests.log 2>&1 &
mock_pid=$!
RAYSERVE_TEST_SHARE=0/2 .venv/bin/python -m pytest --basetemp=test-results/tmp-timed -m "ray and timed" "$@"
pytest_rc $? "timed real-Ray tests"; timed_rc=$?
took "the timed real-Ray tests"
RAYSERVE_TEST_SHARE=0/2 .venv/bin/python -m pytest --basetemp=test-results/tmp-ray -m "ray and not timed" \
  -n 2 --dist loadscope --no-loadscope-reorder "$@"
pytest_rc $? "real-Ray tests"; ray_rc=$?
took "the other real-Ray tests"
wait "$mock_pid"
mock_rc=$?
mock_pid=
took "the mock tests' remainder"
echo "===== the mock tests (run beside the real-Ray tests) ====="
cat test-results/mock-tests.log
pytest_rc "$mock_rc" "mock tests"; mock_rc=$?
[ "$ray_rc" -eq 0 ] && [ "$timed_rc" -eq 0 ] && [ "$mock_rc" -eq 0 ]
