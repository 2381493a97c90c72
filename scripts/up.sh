#!/usr/bin/env bash
# Set up, then `pulumi up --stack local` (a real Ray on this machine serving every bundled app).
#   bash scripts/up.sh [up|refresh|destroy|status]
# State lives in a local file backend (.pulumi-state/). Without a Pulumi CLI on PATH the same provider
# runs through the engine's lifecycle directly (`rayserve up`), with the same inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
action="${1:-up}"
case "$action" in up|refresh|destroy|status) ;; *) echo "usage: bash scripts/up.sh [up|refresh|destroy|status]" >&2; exit 2;; esac
if [ "$action" = status ]; then exec .venv/bin/rayserve status stacks/Pulumi.local.yaml; fi
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$PWD/.pulumi-state}"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"
mkdir -p .pulumi-state
if ! command -v pulumi >/dev/null 2>&1 && [ -x "$HOME/.pulumi/bin/pulumi" ]; then export PATH="$HOME/.pulumi/bin:$PATH"; fi
if command -v pulumi >/dev/null 2>&1; then
  pulumi stack select --create local >/dev/null
  case "$action" in
    destroy) exec pulumi destroy --stack local --yes ;;
    refresh) exec pulumi refresh --stack local --yes ;;
  esac
  pulumi up --stack local --yes --refresh   # read first: a failed deploy or a stopped Ray is noticed
  exec pulumi stack output --stack local --json
fi
echo "No Pulumi CLI on PATH (https://www.pulumi.com/docs/install/): running the local platform's provider" \
     "through the same lifecycle (diff, then create, update or replace), with the same inputs." >&2
exec .venv/bin/rayserve "$action" stacks/Pulumi.local.yaml
