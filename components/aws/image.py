"""ServeImage: the Ray Serve runtime image (ECR repository + pulumi-docker-build), or a prebuilt one.

The bundled apps: the build context is the installed `rayserve_pulumi` package directory; the image takes
IMAGE_PATHS from it (the apps, their Dockerfile and requirements as package data, and the Serve-config
validator). A team's own code (`serve.app_dir`): the context is that folder, built by its own Dockerfile
when it has one, else by `app_dockerfile` (the Ray base image, the requirements file, the folder); the
package's IMAGE_PATHS come from a second, named context (`rayserve`) so the VM head can validate configs
inside the image. Either way the tag ends in a hash of exactly what goes in: an unchanged app keeps its tag.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.app_code import AppCode, tree_digest
from rayserve_pulumi.config.code_check import APP_DIR_ENV
from rayserve_pulumi.config.serve import apps_dir
from rayserve_pulumi.config.stack import ImageSettings
from rayserve_pulumi.config.types import PinnedImage
from rayserve_pulumi.inputs import checked

__all__ = [
    "IMAGE_PATHS", "APP_HOME", "VALIDATOR_HOME", "PACKAGE_CONTEXT", "package_dir", "image_files", "context_hash",
    "app_dockerfile", "dockerfile_text", "build_inputs", "ServeImageArgs", "ServeImage",
]


# What serve_apps/Dockerfile copies into the image (a test reads its COPY lines against this).
IMAGE_PATHS = ("__init__.py", "constants.py", "registry.py", "lazy.py", "constraints.txt", "config", "serve_apps",
               "rollout", "node_agent")  # rollout + node_agent: the splitter, and the VM agent's gated rollout
APP_HOME = "/home/ray/app"  # the apps' code in the image, on PYTHONPATH
VALIDATOR_HOME = "/home/ray/rayserve"  # the package's IMAGE_PATHS beside a team's code (never inside it)
PACKAGE_CONTEXT = "rayserve"  # the named build context holding them


def package_dir() -> Path:
    return apps_dir().parent


def image_files(root: Optional[Path] = None) -> list[Path]:
    """Every file the image takes from the package directory."""
    root = root or package_dir()
    files = []
    for name in IMAGE_PATHS:
        path = root / name
        files += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted(files)


def context_hash(root: Optional[Path] = None, code: Optional[AppCode] = None) -> str:
    """Hash of what the image takes (the package's IMAGE_PATHS, and a team's code with the Dockerfile that
    builds it): a new tag (tags are immutable in ECR) whenever it changes."""
    root = root or package_dir()
    parts = [tree_digest(root, image_files(root))]
    if code is not None and not code.bundled:
        parts += [code.digest(), dockerfile_text(code)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def app_dockerfile(requirements: Optional[str]) -> str:
    """The Dockerfile of a team's code without its own: the Ray base image, its requirements file (a path
    relative to app_dir), the folder itself; the package's validator from the `rayserve` context."""
    pip = ("" if requirements is None else
           f"COPY --chown=ray:users {requirements} /tmp/app-requirements.txt\n"
           "RUN pip install --no-cache-dir -r /tmp/app-requirements.txt\n")
    copies = " ".join(p for p in IMAGE_PATHS if p.endswith(".py"))
    return (f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\n"
            f"ENV {APP_DIR_ENV}={APP_HOME} PYTHONPATH={APP_HOME}:{VALIDATOR_HOME}\n"
            f"{pip}"
            f"COPY --from={PACKAGE_CONTEXT} --chown=ray:users {copies} {VALIDATOR_HOME}/rayserve_pulumi/\n"
            f"COPY --from={PACKAGE_CONTEXT} --chown=ray:users config {VALIDATOR_HOME}/rayserve_pulumi/config\n"
            f"COPY --from={PACKAGE_CONTEXT} --chown=ray:users serve_apps {VALIDATOR_HOME}/rayserve_pulumi/serve_apps\n"
            f"COPY --from={PACKAGE_CONTEXT} --chown=ray:users rollout {VALIDATOR_HOME}/rayserve_pulumi/rollout\n"
            f"COPY --from={PACKAGE_CONTEXT} --chown=ray:users node_agent {VALIDATOR_HOME}/rayserve_pulumi/node_agent\n"
            f"COPY --chown=ray:users . {APP_HOME}/\n"
            f"WORKDIR {APP_HOME}\n")


def dockerfile_text(code: AppCode) -> str:
    """The Dockerfile that builds a team's code: its own (app_dir/Dockerfile), else app_dockerfile."""
    if code.dockerfile is not None:
        return code.dockerfile.read_text()
    return app_dockerfile(None if code.requirements is None else str(code.requirements.relative_to(code.root)))


def build_inputs(code: AppCode) -> dict:
    """docker-build's context and dockerfile for the apps' code."""
    if code.bundled:
        return {"context": {"location": str(package_dir())}, "dockerfile": {"location": str(apps_dir() / "Dockerfile")}}
    dockerfile = {"location": str(code.dockerfile)} if code.dockerfile else {"inline": dockerfile_text(code)}
    return {"context": {"location": str(code.root), "named": {PACKAGE_CONTEXT: {"location": str(package_dir())}}},
            "dockerfile": dockerfile}


@dataclass(frozen=True)
class ServeImageArgs:
    settings: ImageSettings = arg("a prebuilt pinned uri, or build settings (repository, tag, base images)")
    gpu: bool = arg("build on the GPU base image with CUDA torch", False)
    code: AppCode = arg("the apps' code the image carries (AppCode.locate); default the bundled apps",
                        default_factory=AppCode.bundled_apps)
    tags: dict[str, str] = arg("AWS tags", default_factory=dict)
    uri: Optional[pulumi.Input[str]] = arg("a prebuilt image from elsewhere (e.g. another stack's output), pinned "
                                           "by digest or version tag; overrides settings", None)


class ServeImage(pulumi.ComponentResource):
    """Outputs `image_ref` (pinned by digest when built) and `repository_arn` (None for a prebuilt image)."""

    image_ref: pulumi.Output[str]
    repository_arn: Optional[pulumi.Output[str]]

    def __init__(self, name: str, args: ServeImageArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:aws:ServeImage", name, None, opts)
        s = args.settings
        if args.uri is not None or s.uri:
            self.image_ref = checked(args.uri, PinnedImage, "image") if args.uri is not None \
                else pulumi.Output.from_input(s.uri)
            self.repository_arn = None
        else:
            child = pulumi.ResourceOptions(parent=self)
            repo = aws.ecr.Repository(
                f"{name}-repo",
                name=s.repository_name,
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "KMS"}],
                force_delete=False,
                tags=args.tags,
                opts=child,
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-lifecycle",
                repository=repo.name,
                policy=pulumi.Output.json_dumps({"rules": [{
                    "rulePriority": 1, "description": "keep the last 30 images",
                    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 30},
                    "action": {"type": "expire"},
                }]}),
                opts=child,
            )
            token = aws.ecr.get_authorization_token_output(registry_id=repo.registry_id)
            tag = f"{s.tag}-{context_hash(code=args.code)}" + ("-gpu" if args.gpu else "")
            image = docker_build.Image(
                f"{name}-build",
                **build_inputs(args.code),
                build_args={
                    "BASE_IMAGE": s.gpu_base_image if args.gpu else s.ray_base_image,
                    "TORCH_INDEX": "https://download.pytorch.org/whl/cu128" if args.gpu
                    else "https://download.pytorch.org/whl/cpu",
                },
                platforms=[s.platform],
                push=True,
                tags=[pulumi.Output.concat(repo.repository_url, ":", tag)],
                cache_to=[{"inline": {}}],
                registries=[{
                    "address": repo.repository_url,
                    "username": token.user_name,
                    "password": pulumi.Output.secret(token.password),
                }],
                opts=child,
            )
            self.image_ref = pulumi.Output.concat(repo.repository_url, "@", image.digest)
            self.repository_arn = repo.arn
        self.register_outputs({"image_ref": self.image_ref, "repository_arn": self.repository_arn})
