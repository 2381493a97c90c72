"""CheckpointStorage: persistent state for a RayService.

- Redis for GCS fault tolerance (password a Pulumi secret, data on an encrypted gp3 PVC, append-only
  file), so Serve's state survives a head pod restart (`gcsFaultToleranceOptions`). Redis reads its
  password from a config file mounted from the Secret, never from its command line; the readiness
  probe's redis-cli takes it from REDISCLI_AUTH. Non-root, no capabilities.
- Optionally a ReadWriteMany model-cache PVC shared by every Ray pod (HF_HOME).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.stack import CheckpointSettings
from rayserve_pulumi.constants import REDIS_IMAGE, REDIS_PORT

__all__ = [
    "PASSWORD_KEY", "CONF_KEY", "CONF_DIR", "REDIS_UID", "REDIS_SECURITY", "redis_conf", "GcsStorageRef",
    "CheckpointStorageArgs", "CheckpointStorage",
]

PASSWORD_KEY = "password"
CONF_KEY = "redis.conf"
CONF_DIR = "/etc/redis"
REDIS_UID = 999  # the `redis` user of the official image
REDIS_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                  "readOnlyRootFilesystem": True}


def redis_conf(password: str) -> str:
    """Redis' settings: the password, and an append-only file on the volume (fsync every second)."""
    return "\n".join([f"requirepass {password}", "appendonly yes", "appendfsync everysec", "dir /data",
                      f"port {REDIS_PORT}", ""])


@dataclass(frozen=True)
class GcsStorageRef:
    """What a RayCluster spec needs to reach the checkpoint storage."""

    redis_address: Optional[pulumi.Input[str]] = arg("host:port of the GCS Redis (None: no fault tolerance)")
    password_secret: Optional[pulumi.Input[str]] = arg("Secret holding the Redis password")
    password_key: str = arg("key of the password in that Secret", PASSWORD_KEY)
    model_cache_claim: Optional[pulumi.Input[str]] = arg("ReadWriteMany PVC mounted as the model cache", None)


@dataclass(frozen=True)
class CheckpointStorageArgs:
    namespace: pulumi.Input[str] = arg("namespace of the RayService that uses the storage")
    settings: CheckpointSettings = arg("GCS fault tolerance and model-cache sizes")
    storage_class: pulumi.Input[str] = arg("ReadWriteOnce StorageClass for Redis (encrypted)")
    model_cache_storage_class: Optional[pulumi.Input[str]] = arg("ReadWriteMany StorageClass for the model cache", None)


class CheckpointStorage(pulumi.ComponentResource):
    """Outputs `ref` (a GcsStorageRef for the RayService)."""

    ref: Optional[GcsStorageRef]

    def __init__(self, name: str, args: CheckpointStorageArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:kuberay:CheckpointStorage", name, None, opts)
        s = args.settings
        redis_address = password_secret = None
        self.redis_labels: Optional[dict] = None  # pods of the Redis deployed here (NetworkPolicy selects them)
        password_key = PASSWORD_KEY
        if s.gcs_fault_tolerance and s.external_redis:
            external = s.external_redis
            redis_address, password_secret, password_key = external.address, external.password_secret, external.password_key
        elif s.gcs_fault_tolerance:
            redis_address, password_secret = self._redis(name, args)
        model_claim = None
        if s.model_cache_gi:
            if args.model_cache_storage_class is None:
                raise ValueError("model_cache_gi needs a ReadWriteMany storage class (EksCluster enable_efs)")
            claim = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-model-cache",
                metadata={"namespace": args.namespace, "name": f"{name}-model-cache"},
                spec={"access_modes": ["ReadWriteMany"], "storage_class_name": args.model_cache_storage_class,
                      "resources": {"requests": {"storage": f"{s.model_cache_gi}Gi"}}},
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            model_claim = claim.metadata.name
        self.ref = GcsStorageRef(redis_address=redis_address, password_secret=password_secret,
                                 password_key=password_key, model_cache_claim=model_claim)
        self.register_outputs({"redis_address": self.ref.redis_address, "password_secret": self.ref.password_secret,
                               "model_cache_claim": model_claim})

    def _redis(self, name: str, args: CheckpointStorageArgs):
        """Password secret, Service and single-replica StatefulSet with an encrypted PVC."""
        s, child = args.settings, pulumi.ResourceOptions(parent=self)
        self.password = random.RandomPassword(f"{name}-redis-password", length=32, special=False, opts=child)
        labels = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": name}
        self.redis_labels = labels
        secret = k8s.core.v1.Secret(
            f"{name}-redis-auth",
            metadata={"namespace": args.namespace, "name": f"{name}-redis-auth"},
            string_data={PASSWORD_KEY: self.password.result, CONF_KEY: self.password.result.apply(redis_conf)},
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["string_data", "data"]),
        )
        service = k8s.core.v1.Service(
            f"{name}-redis",
            metadata={"namespace": args.namespace, "name": f"{name}-redis", "labels": labels},
            spec={"selector": labels, "ports": [{"name": "redis", "port": REDIS_PORT, "target_port": REDIS_PORT}]},
            opts=child,
        )
        self.redis = k8s.apps.v1.StatefulSet(
            f"{name}-redis",
            metadata={"namespace": args.namespace, "name": f"{name}-redis", "labels": labels},
            spec={
                "service_name": service.metadata.name,
                "replicas": 1,
                "selector": {"match_labels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "security_context": {"run_as_non_root": True, "run_as_user": REDIS_UID,
                                             "run_as_group": REDIS_UID, "fs_group": REDIS_UID,
                                             "seccomp_profile": {"type": "RuntimeDefault"}},
                        "containers": [{
                            "name": "redis",
                            "image": REDIS_IMAGE,
                            "args": [f"{CONF_DIR}/{CONF_KEY}"],  # the image runs redis-server on a *.conf argument
                            "env": [{"name": "REDISCLI_AUTH",
                                     "value_from": {"secret_key_ref": {"name": secret.metadata.name, "key": PASSWORD_KEY}}}],
                            "ports": [{"container_port": REDIS_PORT, "name": "redis"}],
                            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                          "limits": {"cpu": "1", "memory": "1Gi"}},
                            "readiness_probe": {"exec": {"command": ["sh", "-c", "redis-cli ping | grep -q PONG"]},
                                                "period_seconds": 5},
                            "security_context": dict(REDIS_SECURITY),
                            "volume_mounts": [{"name": "data", "mount_path": "/data"},
                                              {"name": "config", "mount_path": CONF_DIR, "read_only": True}],
                        }],
                        "volumes": [{"name": "config", "secret": {
                            "secret_name": secret.metadata.name, "default_mode": 0o400,
                            "items": [{"key": CONF_KEY, "path": CONF_KEY}]}}],
                    },
                },
                "volume_claim_templates": [{
                    "metadata": {"name": "data"},
                    "spec": {"access_modes": ["ReadWriteOnce"], "storage_class_name": args.storage_class,
                             "resources": {"requests": {"storage": f"{s.redis_storage_gi}Gi"}}},
                }],
                "persistent_volume_claim_retention_policy": {"when_deleted": "Retain", "when_scaled": "Retain"},
            },
            opts=child,
        )
        address = pulumi.Output.concat(service.metadata.name, ".", args.namespace, ".svc.cluster.local:", str(REDIS_PORT))
        return address, secret.metadata.name
