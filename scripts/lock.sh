#!/usr/bin/env bash
# The lock: components/constraints.txt, the exact versions CI, scripts/setup.sh and the Serve image install
# (shipped in the wheel as rayserve_pulumi/constraints.txt). `bash scripts/lock.sh` resolves pyproject.toml's
# ranges anew in a scratch venv (the project with its test and ml extras) and freezes it;
# `bash scripts/lock.sh .venv` freezes an existing venv instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-}"
if [ -z "$VENV" ]; then
  VENV=$(mktemp -d)/venv
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[test,ml]"
fi
{
  echo "# The lock: exact versions of everything the project installs (scripts/lock.sh writes it)."
  # torch's local label (+cpu) names the wheel, not the release: ==2.13.0 takes the CPU or the CUDA build.
  "$VENV/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^rayserve' \
    | sed -E 's/^(torch==[^+]+)\+.*/\1/' | LC_ALL=C sort -f
} > components/constraints.txt
echo "wrote components/constraints.txt ($(grep -vc '^#' components/constraints.txt) packages)" >&2
