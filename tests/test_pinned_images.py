"""The images the package runs itself are pinned by digest: every container the EKS stacks declare (the built
Serve image in every Ray pod, prod's Redis), the KubeRay operator its chart runs, and a VM head's Redis,
Prometheus and Grafana containers."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rayserve_pulumi.config.images import parse_reference
from rayserve_pulumi.constants import GRAFANA_IMAGE, PROMETHEUS_IMAGE, REDIS_IMAGE
from rayserve_pulumi.kuberay.operator import operator_image_tag
from rayserve_pulumi.node_agent import bootstrap


def _container_images(value) -> list[str]:
    """The image of every container and init container anywhere in a resource's inputs."""
    if isinstance(value, list):
        return [image for item in value for image in _container_images(item)]
    if not isinstance(value, dict):
        return []
    own = [c["image"] for key in ("containers", "initContainers") for c in value.get(key) or []
           if isinstance(c, dict) and "image" in c]
    return own + [image for key, item in value.items() for image in _container_images(item)]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_container_an_eks_stack_declares_runs_an_image_pinned_by_digest(rendered, stack):
    images = {image for r in rendered[stack].resources for image in _container_images(r.inputs)}
    assert images, "no container found: the walk missed the stack's pods"
    assert {image for image in images if not parse_reference(image)["digest"]} == set()
    if stack == "prod":  # prod's GCS fault tolerance runs the package's Redis
        assert REDIS_IMAGE in images


def test_the_kuberay_operator_runs_its_release_by_digest(rendered):
    release = rendered["prod"].one("kubernetes:helm.sh/v3:Release", "kuberay").inputs
    tag = release["values"]["image"]["tag"]
    # the chart writes "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
    parts = parse_reference(f"quay.io/kuberay/operator:{tag}")
    assert parts["tag"] == f"v{release['version']}" and parts["digest"], tag
    assert operator_image_tag("1.6.0") == "v1.6.0"  # a release whose digest the package does not know: its tag


def test_a_vm_head_runs_redis_prometheus_and_grafana_by_digest():
    args = argparse.Namespace(prometheus_port=9090, grafana_port=3000)
    commands = [bootstrap.redis_docker(Path("/data"), Path("/data/redis.conf")),
                bootstrap.prometheus_docker(args, Path("/mnt/ckpt/prometheus")), bootstrap.grafana_docker(args)]
    for image, command in zip((REDIS_IMAGE, PROMETHEUS_IMAGE, GRAFANA_IMAGE), commands):
        assert image in command and parse_reference(image)["digest"], (image, command)
