"""pysource.parse: a parse during which a garbage collection runs code that parses too (as a finalizer logging
asyncio's "Future exception was never retrieved" does, formatting its traceback) still returns the module."""
from __future__ import annotations

import ast
import contextlib
import gc
import sys

import pytest

from rayserve_pulumi import pysource
from tests.helpers import ROOT

SOURCE = (ROOT / "components" / "local" / "head.py").read_text()


@contextlib.contextmanager
def _collections_that_parse():
    """Every collection parses (as a finalizer that formats a traceback does), and one comes every 50
    allocations: several during any parse of a module."""
    def parses(phase, info):
        ast.parse("a[b] + c")

    threshold = gc.get_threshold()
    gc.set_threshold(50)
    gc.callbacks.append(parses)
    try:
        yield
    finally:
        gc.callbacks.remove(parses)
        gc.set_threshold(*threshold)


def _parsed(parse) -> str:
    """What `parse(SOURCE)` gives while collections parse: its dump, or the error (reported once they stop)."""
    with _collections_that_parse():
        try:
            return ast.dump(parse(SOURCE))
        except SystemError as exc:
            return str(exc)


EXPECTED = ast.dump(ast.parse(SOURCE))


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the fault is CPython 3.11's")
def test_the_fault_is_there_in_this_python():
    assert _parsed(ast.parse).startswith("AST constructor recursion depth mismatch")


def test_parse_is_safe_from_it():
    assert _parsed(pysource.parse) == EXPECTED
    assert gc.isenabled()
