"""The stacks in stacks/ under Pulumi mocks (rayserve_pulumi.preview), and helpers over what they declare."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Optional

from rayserve_pulumi.config import read_stack_file
from rayserve_pulumi.preview import Declared, Rendered, mock_arn, preview

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"
__all__ = ["Declared", "Rendered", "mock_arn", "render", "stack_values", "all_stacks", "with_user_config", "user_data"]


def stack_values(stack: str) -> dict[str, Any]:
    """The `rayserve:` values of stacks/Pulumi.<stack>.yaml (namespace stripped)."""
    return read_stack_file(STACKS / f"Pulumi.{stack}.yaml")


def all_stacks() -> list[str]:
    return sorted(p.name.split(".")[1] for p in STACKS.glob("Pulumi.*.yaml"))


def render(values: dict[str, Any], stack: str = "test", program: Optional[Callable[[], dict]] = None,
           into: Optional[Rendered] = None) -> Rendered:
    """The program (or `program`) with these values under mocks, secrets unwrapped, relative paths from ROOT."""
    return preview(values, stack, program, into, program_dir=ROOT)


def with_user_config(values: dict, price: int) -> dict:
    """These stack values with fruit.MangoStand's user_config price set."""
    values = copy.deepcopy(values)
    values.setdefault("serve", {}).setdefault("overrides", {}).setdefault("fruit", {})["MangoStand"] = {
        "user_config": {"price": price}}
    return values


def user_data(r, kind: str) -> str:
    """The rendered head (instance) or worker (launch template) user data script (gzipped, base64)."""
    from rayserve_pulumi.aws.vm.user_data import decode

    if kind == "head":
        return decode(r.one("aws:ec2/instance:Instance").inputs["userDataBase64"])
    return decode(r.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["userData"])
