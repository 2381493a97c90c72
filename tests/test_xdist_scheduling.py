"""The real-Ray tests' split between pytest-xdist workers (tests/conftest.py): by module, and a package whose
modules share one stack as one unit, so that stack starts once."""
from __future__ import annotations

import pytest

from tests import conftest
from tests.helpers import ROOT


def _scheduler(pytestconfig, monkeypatch, dist: str):
    monkeypatch.setattr(pytestconfig.option, "dist", dist, raising=False)
    monkeypatch.setattr(pytestconfig.option, "tx", ["2*popen"], raising=False)  # `-n 2`, as scripts/test.sh runs it
    return conftest.pytest_xdist_make_scheduler(pytestconfig, None)


def test_a_shared_stack_package_is_one_unit_and_other_modules_one_each(pytestconfig, monkeypatch):
    split = _scheduler(pytestconfig, monkeypatch, "loadscope")._split_scope
    assert split("tests/local_stack/test_platform.py::test_a") == split("tests/local_stack/test_serving.py::test_b[x]")
    assert split("tests/local/test_reliability.py::test_a") == "tests/local/test_reliability.py"
    assert split("tests/local/test_head.py::test_a") != split("tests/local/test_reliability.py::test_a")


def test_each_shared_stack_package_is_a_package_whose_conftest_starts_the_stack():
    for package in conftest.SHARED_STACK_PACKAGES:
        assert (ROOT / package / "__init__.py").exists() and 'scope="package"' in (ROOT / package / "conftest.py").read_text()


@pytest.mark.parametrize("dist", ["load", "loadfile", "no"])
def test_other_modes_keep_pytest_xdists_own_scheduler(pytestconfig, monkeypatch, dist):
    assert _scheduler(pytestconfig, monkeypatch, dist) is None
