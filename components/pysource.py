"""Parsing Python source with `ast`, safe from a CPython 3.11 fault: the AST's conversion to Python objects
keeps its recursion depth in one interpreter-wide counter, so a second parse started inside the first
fails the first with "SystemError: AST constructor recursion depth mismatch". A garbage collection during
the parse starts one: a finalizer that logs a traceback (asyncio's "Future exception was never retrieved")
formats it with `ast.parse` (traceback's caret anchors). No collection runs during the parse."""
from __future__ import annotations

import ast
import gc
import threading

__all__ = ["parse"]

# Parses in two threads take turns: otherwise one could pause the collector after the other resumed it, and
# leave it paused for good (it saw it paused, so it does not resume it).
_ONE_AT_A_TIME = threading.Lock()


def parse(source: str) -> ast.Module:
    """`ast.parse(source)` with the cyclic garbage collector paused."""
    with _ONE_AT_A_TIME:
        paused = gc.isenabled()
        gc.disable()
        try:
            return ast.parse(source)
        finally:
            if paused:
                gc.enable()
