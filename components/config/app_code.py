"""Where a stack's Serve apps come from: the team's own code directory (`rayserve:serve.app_dir`), or the
bundled apps when it is unset.

One `AppCode` answers every question about that code: the folder Ray's workers import from, the
requirements file and Dockerfile that go with it, which files the image takes and their digest (a new
image tag, a local redeploy, a fresh validation whenever it changes). Standard library only.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rayserve_pulumi.config.errors import ConfigError

__all__ = [
    "APPS_PACKAGE", "REQUIREMENTS", "DOCKERFILE", "SKIPPED_PARTS", "KEY", "bundled_dir", "tree_digest", "AppCode",
]

APPS_PACKAGE = "rayserve_pulumi.serve_apps"
REQUIREMENTS = "requirements.txt"
DOCKERFILE = "Dockerfile"
# never part of an app's code: caches, VCS and Pulumi state a project may keep beside it
SKIPPED_PARTS = {"__pycache__", ".git", ".pulumi-state", ".venv", ".pytest_cache", ".mypy_cache"}
KEY = "rayserve:serve.app_dir"


def bundled_dir() -> Path:
    """The installed directory of the bundled apps (a real directory: the package is never zipped)."""
    import importlib.resources

    return Path(str(importlib.resources.files(APPS_PACKAGE)))


def tree_digest(root: Path, files: list[Path]) -> str:
    """sha256 over the path (relative to `root`) and bytes of each file: the one definition of "this code"
    that validation verdicts, local redeploys and image tags follow."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class AppCode:
    """The apps' code. `app_dir` None: the bundled apps (import paths under `rayserve_pulumi.serve_apps`);
    otherwise the team's folder, which Ray's workers get on their import path and the image copies whole."""

    app_dir: Optional[Path] = None
    requirements: Optional[Path] = None
    dockerfile: Optional[Path] = None

    @property
    def bundled(self) -> bool:
        return self.app_dir is None

    @property
    def root(self) -> Path:
        """The folder every import path must resolve inside."""
        return self.app_dir if self.app_dir is not None else bundled_dir().resolve()

    def files(self) -> list[Path]:
        """Every file of the code (what the image's context holds), caches and state left out."""
        return sorted(p for p in self.root.rglob("*") if p.is_file() and not SKIPPED_PARTS & set(p.parts)
                      and p.suffix != ".pyc")

    def digest(self) -> str:
        """tree_digest of every file: any change to the code changes it."""
        return tree_digest(self.root, self.files())

    @classmethod
    def bundled_apps(cls) -> "AppCode":
        root = bundled_dir().resolve()
        return cls(None, root / REQUIREMENTS, root / DOCKERFILE)

    @classmethod
    def locate(cls, app_dir: Optional[str], requirements: Optional[str] = None,
               program_dir: Optional[Path] = None) -> "AppCode":
        """The code a stack names (`app_dir` relative to the program's directory; `requirements` relative to
        app_dir, default its requirements.txt when present); one ConfigError line per problem."""
        if app_dir is None:
            if requirements is not None:
                raise ConfigError("rayserve:serve.requirements: set serve.app_dir too (the bundled apps bring "
                                  "their own requirements)")
            return cls.bundled_apps()
        root = (Path(program_dir or Path.cwd()) / app_dir).resolve()
        if not root.exists():
            raise ConfigError(f"{KEY}: {root} does not exist; give the folder holding your apps' packages or modules")
        if not root.is_dir():
            raise ConfigError(f"{KEY}: {root} is not a directory; give the folder holding your apps' code")
        errors = []
        req = None
        if requirements is not None:
            req = (root / requirements).resolve()
            if not req.is_relative_to(root):
                errors.append(f"rayserve:serve.requirements: {requirements!r} lies outside serve.app_dir {root}")
            elif not req.is_file():
                errors.append(f"rayserve:serve.requirements: {req} is not a file; give a pip requirements file "
                              f"inside serve.app_dir, or leave it unset")
        elif (root / REQUIREMENTS).is_file():
            req = root / REQUIREMENTS
        dockerfile = root / DOCKERFILE
        if dockerfile.exists() and not dockerfile.is_file():
            errors.append(f"{KEY}: {dockerfile} is not a file; a Dockerfile in app_dir must be a file (it builds "
                          "the image instead of the package's own)")
        if errors:
            raise ConfigError(*errors)
        return cls(root, req, dockerfile if dockerfile.is_file() else None)
