#!/usr/bin/env bash
# Set up, then `pulumi up --stack local` (a real Ray on this machine serving every bundled app).
# State lives in a local file backend (.pulumi-state/); pass `destroy` to tear the stack down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
action="${1:-up}"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$PWD/.pulumi-state}"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"
mkdir -p .pulumi-state
if ! command -v pulumi >/dev/null 2>&1 && [ -x "$HOME/.pulumi/bin/pulumi" ]; then export PATH="$HOME/.pulumi/bin:$PATH"; fi
if command -v pulumi >/dev/null 2>&1; then
  pulumi stack select --create local >/dev/null
  if [ "$action" = destroy ]; then exec pulumi destroy --stack local --yes; fi
  pulumi up --stack local --yes
  exec pulumi stack output --stack local --json
fi
echo "No Pulumi CLI on PATH (install it: https://www.pulumi.com/docs/install/); running the local" \
     "platform's provider directly, with the same config and code." >&2
exec .venv/bin/python -m rayserve_pulumi.local.cli "$action" --stack-file stacks/Pulumi.local.yaml \
  --state .pulumi-state/local-direct.json --program-dir .
