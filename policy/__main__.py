"""Policy pack enforcing rayserve's defaults: `pulumi preview --policy-pack policy`."""
from pulumi_policy import EnforcementLevel, PolicyPack

from policy.rayserve_policies import POLICIES

PolicyPack(name="rayserve-defaults", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
