"""Where the local platform keeps each version's code: a content-addressed copy of `app_dir` per version,
which the deployed config pins (what a rollback, and the gated rollout of rollout.stepped, import)."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

__all__ = ["code_copy", "snapshot"]


def code_copy(run_dir: str, version: str) -> Path:
    """Where the code of `version` is kept for this stack (what a rollback imports)."""
    return Path(run_dir) / "code" / version


def snapshot(run_dir: str, app_dir: str, version: str) -> Path:
    """A copy of `app_dir` as deployed under `version`, made once (written aside, then renamed into place)."""
    target = code_copy(run_dir, version)
    if not target.is_dir():
        draft = target.with_name(f".{version}.{time.monotonic_ns()}")
        shutil.copytree(app_dir, draft, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
        try:
            draft.rename(target)
        except OSError:  # another up made it meanwhile: keep that one
            shutil.rmtree(draft, ignore_errors=True)
    return target
