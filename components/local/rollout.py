"""Where the local platform keeps each version's code: a content-addressed copy of the apps' code per version,
which the deployed config pins (what a rollback, and the gated rollout of rollout.stepped, import).

A team's apps (`app_dir`) are copied as they are. The bundled apps import as `rayserve_pulumi.serve_apps`,
inside the installed package, which an upgrade replaces: their copy is `rayserve_pulumi/serve_apps/` under a
`rayserve_pulumi/__init__.py` that is the installed one plus the installed package's folder on its `__path__`,
so a worker importing from the copy gets that version's `serve_apps` and every other module of the package
from the installed one (the bundled apps import nothing else of it)."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Optional

__all__ = ["code_copy", "snapshot"]

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".git")


def code_copy(run_dir: str, version: str) -> Path:
    """Where the code of `version` is kept for this stack (what a rollback imports)."""
    return Path(run_dir) / "code" / version


def _bundled(draft: Path) -> None:
    """The bundled apps as installed now, in a `rayserve_pulumi` that falls back to the installed package."""
    import rayserve_pulumi
    from rayserve_pulumi.config import app_code

    installed = Path(rayserve_pulumi.__file__).parent
    package = draft / "rayserve_pulumi"
    shutil.copytree(app_code.bundled_dir(), package / app_code.APPS_PACKAGE.rsplit(".", 1)[1], ignore=_IGNORED)
    (package / "__init__.py").write_text(
        (installed / "__init__.py").read_text()
        + "\n# A copy of the bundled apps (local.rollout): this version's serve_apps, the installed package's rest\n"
        + f"__path__.append({str(installed)!r})\n")


def snapshot(run_dir: str, app_dir: Optional[str], version: str) -> Path:
    """A copy of the code deployed under `version` (`app_dir`, or the bundled apps when None), made once
    (written aside, then renamed into place)."""
    target = code_copy(run_dir, version)
    if not target.is_dir():
        draft = target.with_name(f".{version}.{time.monotonic_ns()}")
        if app_dir:
            shutil.copytree(app_dir, draft, ignore=_IGNORED)
        else:
            _bundled(draft)
        try:
            draft.rename(target)
        except OSError:  # another up made it meanwhile: keep that one
            shutil.rmtree(draft, ignore_errors=True)
    return target
