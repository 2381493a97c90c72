"""The policy pack's rules (`CHECKS`: name -> check function, `POLICIES`: pulumi-policy objects)."""
from rayserve_pulumi.policy.rules import CHECKS, POLICIES

__all__ = ["CHECKS", "POLICIES"]
