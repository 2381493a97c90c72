"""The stack program: validate everything first, then declare the chosen platform and its outputs."""
from __future__ import annotations

from typing import Optional

import pulumi

from components.config import StackConfig, load_stack_config
from components.serve_config import build_serve_config


def build(cfg: Optional[StackConfig] = None) -> dict:
    """Declare the stack's resources; returns the exported outputs (also `pulumi.export`ed)."""
    cfg = cfg or load_stack_config()
    serve_config = build_serve_config(cfg.serve)  # raises ConfigError before any resource exists
    if cfg.platform == "local":
        outputs = _local(cfg, serve_config)
    elif cfg.platform == "eks":
        outputs = _eks(cfg, serve_config)
    else:
        outputs = _vm(cfg, serve_config)
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


def _local(cfg: StackConfig, serve_config: dict) -> dict:
    from components.local_platform import LocalPlatform, LocalPlatformArgs

    local = LocalPlatform(cfg.name, LocalPlatformArgs(settings=cfg.local, serve_config=serve_config, proxy=cfg.serve.proxy))
    return {"platform": "local", "app_urls": local.app_urls, "dashboard_url": local.dashboard_url}


def _image(cfg: StackConfig, gpu: bool = False):
    from components.serve_image import ServeImage, ServeImageArgs

    return ServeImage(f"{cfg.name}-image", ServeImageArgs(settings=cfg.image, gpu=gpu, tags=cfg.tags))


def _eks(cfg: StackConfig, serve_config: dict) -> dict:
    import pulumi_kubernetes as k8s

    from components.checkpoint_storage import CheckpointStorage, CheckpointStorageArgs
    from components.eks_cluster import EksCluster, EksClusterArgs
    from components.kuberay_operator import KubeRayOperator, KubeRayOperatorArgs
    from components.rayservice import RayService, RayServiceArgs

    rs = cfg.ray_service
    needs_gpu = rs.head.gpu > 0 or any(g.gpu for g in rs.worker_groups)
    image = _image(cfg, gpu=needs_gpu)
    cluster = EksCluster(f"{cfg.name}-eks", EksClusterArgs(
        settings=cfg.eks, enable_efs=rs.checkpoint.model_cache_gi is not None, tags=cfg.tags))
    k8s_opts = pulumi.ResourceOptions(provider=cluster.provider)
    operator = KubeRayOperator(f"{cfg.name}-kuberay", KubeRayOperatorArgs(settings=cfg.kuberay), k8s_opts)
    namespace = k8s.core.v1.Namespace(f"{cfg.name}-ns", metadata={"name": rs.namespace}, opts=k8s_opts)
    storage = None
    if rs.checkpoint.gcs_fault_tolerance or rs.checkpoint.model_cache_gi:
        storage = CheckpointStorage(f"{cfg.name}-ckpt", CheckpointStorageArgs(
            namespace=namespace.metadata.name, settings=rs.checkpoint, storage_class=cluster.storage_class_name,
            model_cache_storage_class=cluster.model_cache_storage_class), k8s_opts)
    service = RayService(
        f"{cfg.name}-rayservice",
        RayServiceArgs(settings=rs, serve_config=serve_config, image=image.image_ref, eks=cfg.eks, storage=storage,
                       proxy=cfg.serve.proxy),
        pulumi.ResourceOptions(provider=cluster.provider,
                               depends_on=[operator, namespace, *([storage] if storage else [])]),
    )
    return {
        "platform": "eks",
        "app_urls": service.app_urls,
        "dashboard_hint": service.dashboard_hint,
        "image": image.image_ref,
        "kubeconfig": cluster.kubeconfig,
        "cluster_name": cluster.cluster_name,
    }


def _vm(cfg: StackConfig, serve_config: dict) -> dict:
    from components.vm_cluster import RayVmCluster, RayVmClusterArgs, check_serve_port

    check_serve_port(serve_config)  # before the image is declared
    image = _image(cfg)
    vm = RayVmCluster(
        f"{cfg.name}-vm",
        RayVmClusterArgs(settings=cfg.vm, serve_config=serve_config, image=image.image_ref,
                         image_repository_arn=image.repository_arn, tags=cfg.tags, proxy=cfg.serve.proxy),
    )
    return {
        "platform": "vm",
        "app_urls": vm.app_urls,
        "head_private_ip": vm.head_private_ip,
        "dashboard_hint": vm.dashboard_hint,
        "image": image.image_ref,
    }
