#!/usr/bin/env bash
# The ranges' lower bounds where the code leans on a newer API (Pulumi's component provider host and
# InvokeOutputOptions, pydantic's validation context, pulumi-kubernetes' CustomResource): a scratch venv that
# sees .venv's packages but takes these at the lowest release pyproject.toml admits, then the tests that
# exercise them, no Ray started. The upper side is the lock, which CI tests. Needs PyPI (the test suite
# never reaches the network); run after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
LOWEST="pulumi==3.237.0 pulumi-kubernetes==4.19.0 pydantic==2.10.0 pydantic-core==2.27.1"
VENV=test-results/bounds-venv
rm -rf "$VENV" && mkdir -p test-results
.venv/bin/python -m venv "$VENV"
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
main=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "import site; site.addsitedir('$main')" > "$site/main-venv.pth"  # after this venv's own packages
"$VENV/bin/python" -m pip install -q --no-deps --disable-pip-version-check $LOWEST
"$VENV/bin/python" -c "import pulumi, pydantic, pulumi_kubernetes; from importlib.metadata import version as v
print('lower bounds:', *(f'{p} {v(p)}' for p in ('pulumi', 'pulumi-kubernetes', 'pydantic', 'pydantic-core')))"
"$VENV/bin/python" -m pytest -q -m "not ray" -p no:cacheprovider --basetemp=test-results/bounds-tmp \
  tests/config tests/provider tests/examples tests/kubernetes tests/test_cli.py tests/test_program.py "$@"
