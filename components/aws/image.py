"""ServeImage: the Ray Serve runtime image (ECR repository + pulumi-docker-build), or a prebuilt one.

The build context is the installed `rayserve_pulumi` package directory; the image takes IMAGE_PATHS from
it (the apps, their Dockerfile and requirements as package data, and the Serve-config validator), so a
program using the installed package builds the same image, and only a change there makes a new tag.
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
from rayserve_pulumi.config.serve import apps_dir
from rayserve_pulumi.config.stack import ImageSettings


# What serve_apps/Dockerfile copies into the image (a test reads its COPY lines against this).
IMAGE_PATHS = ("__init__.py", "constants.py", "registry.py", "config", "serve_apps")


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


def context_hash(root: Optional[Path] = None) -> str:
    """Hash of what the image takes: a new tag (tags are immutable in ECR) whenever it changes."""
    root = root or package_dir()
    digest = hashlib.sha256()
    for path in image_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class ServeImageArgs:
    settings: ImageSettings = arg("a prebuilt pinned uri, or build settings (repository, tag, base images)")
    gpu: bool = arg("build on the GPU base image with CUDA torch", False)
    tags: dict[str, str] = arg("AWS tags", default_factory=dict)


class ServeImage(pulumi.ComponentResource):
    """Outputs `image_ref` (pinned by digest when built) and `repository_arn` (None for a prebuilt image)."""

    image_ref: pulumi.Output[str]
    repository_arn: Optional[pulumi.Output[str]]

    def __init__(self, name: str, args: ServeImageArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:aws:ServeImage", name, None, opts)
        s = args.settings
        if s.uri:
            self.image_ref = pulumi.Output.from_input(s.uri)
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
            tag = f"{s.tag}-{context_hash()}" + ("-gpu" if args.gpu else "")
            context = package_dir()
            image = docker_build.Image(
                f"{name}-build",
                context={"location": str(context)},
                dockerfile={"location": str(apps_dir() / "Dockerfile")},
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
