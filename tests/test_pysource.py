"""pysource.parse: a parse during which a garbage collection runs code that parses too (as a finalizer logging
asyncio's "Future exception was never retrieved" does, formatting its traceback) still returns the module."""
from __future__ import annotations

import ast
import contextlib
import gc
import sys
import threading

import pytest

from rayserve_pulumi import pysource
from tests.helpers import ROOT

SOURCE = (ROOT / "components" / "local" / "head.py").read_text()


def _parse_from(depth: int) -> None:
    """`ast.parse` from `depth` Python frames further down the stack."""
    if depth:
        return _parse_from(depth - 1)
    ast.parse("a[b] + c")


@contextlib.contextmanager
def _collections_that_parse():
    """Every collection parses (as a finalizer that formats a traceback does), and one comes every 50
    allocations: several during any parse of a module. The inner parse resets the shared counter to its own
    start, which is set by the stack's depth, and the outer parse then unwinds from there: started 40 frames
    down (as from a traceback's formatting), it can never land back on the outer's start, whereas 2 frames
    down it does whenever the last collection meets a node nested exactly that deep (about 1 in 20)."""
    def parses(phase, info):
        _parse_from(40)

    threshold = gc.get_threshold()
    gc.set_threshold(50)
    gc.callbacks.append(parses)
    try:
        yield
    finally:
        gc.callbacks.remove(parses)
        gc.set_threshold(*threshold)


def _parsed(parse, allocated: int = 0) -> str:
    """What `parse(SOURCE)` gives while collections parse, with `allocated` objects made since the last
    collection (where in the parse collections fall): its dump, or the error (reported once they stop)."""
    gc.collect(0)  # counts from 0; a full collection of the mock session's heap, 100 times over, took 25 s
    made = [[] for _ in range(allocated)]
    with _collections_that_parse():
        try:
            tree = parse(SOURCE)
        except SystemError as exc:
            return str(exc)
        finally:
            del made
    return ast.dump(tree)  # after: dumping under a collection every 50 allocations took seconds


EXPECTED = ast.dump(ast.parse(SOURCE))


PHASES = range(50)  # every place in the parse where the collections can fall


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the fault is CPython 3.11's")
def test_the_fault_is_there_in_this_python():
    spared = [n for n in PHASES if not _parsed(ast.parse, n).startswith("AST constructor recursion depth mismatch")]
    assert spared == []


def test_parse_is_safe_from_it():
    assert [n for n in PHASES if _parsed(pysource.parse, n) != EXPECTED] == []
    assert gc.isenabled()


def test_parses_in_several_threads_leave_the_collector_running():
    """Unserialized, about 1 round in 10 here leaves the collector paused for good."""
    def parses():
        for _ in range(300):
            pysource.parse("x = 1")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads swap between any two bytecodes
    try:
        paused = 0
        for _ in range(100):
            threads = [threading.Thread(target=parses) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if not gc.isenabled():
                paused += 1
                gc.enable()
    finally:
        sys.setswitchinterval(interval)
    assert paused == 0
