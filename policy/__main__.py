"""Policy pack entry point: `pulumi preview --policy-pack policy` (rules live in rayserve_pulumi.policy)."""
from pulumi_policy import EnforcementLevel, PolicyPack

from rayserve_pulumi.policy import POLICIES

PolicyPack(name="rayserve-defaults", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
