"""The node agent's archive in EC2 user data: the constants it ships are those its modules import."""
from __future__ import annotations

import pytest

from rayserve_pulumi.aws.vm import user_data


SOURCE = '''from __future__ import annotations
__all__ = ["A", "B", "C", "D"]
BASE = 6000
A = BASE + 1  # needs BASE
B, C = 2, 3
D: int = 4
'''


def test_only_the_imported_constants_and_what_they_read_travel():
    kept = user_data.only(SOURCE, {"A", "D"})
    namespace: dict = {}
    exec(kept, namespace)
    assert {k for k in namespace if not k.startswith("__")} == {"BASE", "A", "D", "annotations"}
    assert namespace["A"] == 6001


def test_a_name_the_module_does_not_define_fails_the_render():
    with pytest.raises(ValueError, match=r"the agent imports \['E'\]"):
        user_data.only(SOURCE, {"A", "E"})


def test_the_shipped_constants_are_every_one_the_agents_modules_import():
    sources = [(user_data.PACKAGE_ROOT / name).read_text() for name in user_data.AGENT_FILES]
    wanted = user_data.imported_from("rayserve_pulumi.constants", sources)
    assert {"GCS_PORT", "METRICS_PORT", "DASHBOARD_AGENT_LISTEN_PORT"} <= wanted
    shipped = user_data.only((user_data.PACKAGE_ROOT / "constants.py").read_text(), wanted)
    namespace: dict = {}
    exec(shipped, namespace)
    assert wanted <= set(namespace) and "KARPENTER_VERSION" not in namespace  # the rest of the package's stay home
