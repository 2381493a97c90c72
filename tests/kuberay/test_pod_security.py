"""Pod Security Admission: the namespaces the package creates carry `pod-security.kubernetes.io` labels, and every
pod template it declares in a namespace enforcing `restricted` passes the restricted profile's checks (the
Kubernetes Pod Security Standards, checked here as the admission plugin would; the charts' own pods are
rendered by Helm, which does not run here)."""
from __future__ import annotations

import pytest

from tests.pulumi_harness import render, stack_values

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                   "secret", "name"}


def restricted_violations(pod: dict, extra_containers: list[dict] = ()) -> list[str]:
    found = []
    pod_sc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(key)
    for volume in pod.get("volumes") or []:
        if set(volume) - ALLOWED_VOLUMES:
            found.append(f"volume {volume.get('name')}: {sorted(set(volume) - ALLOWED_VOLUMES)}")
    for c in [*(pod.get("initContainers") or []), *pod["containers"], *extra_containers]:
        sc = c.get("securityContext") or {}
        where = c.get("name", "container")
        if sc.get("privileged"):
            found.append(f"{where}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []) or set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{where}: capabilities must drop ALL")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            found.append(f"{where}: runAsNonRoot")
        if 0 in (sc.get("runAsUser"), pod_sc.get("runAsUser")):
            found.append(f"{where}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where}: seccompProfile")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            found.append(f"{where}: hostPort")
    return found


def _restricted_namespaces(r) -> set[str]:
    return {n.inputs["metadata"]["name"] for n in r.of_type("kubernetes:core/v1:Namespace")
            if n.inputs["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "restricted"}


@pytest.mark.parametrize("stack", ["dev", "prod", "kubernetes"])
def test_every_namespace_is_labelled_and_ray_and_operator_enforce_restricted(stack):
    r = render(stack_values(stack), stack)
    namespaces = {n.inputs["metadata"]["name"]: n.inputs["metadata"].get("labels", {})
                  for n in r.of_type("kubernetes:core/v1:Namespace")}
    assert namespaces and all("pod-security.kubernetes.io/enforce" in labels for labels in namespaces.values())
    values = stack_values(stack)
    restricted = _restricted_namespaces(r)
    assert values["ray_service"]["namespace"] in restricted
    if values.get("kubernetes", {}).get("install_operator", True):
        from rayserve_pulumi.kuberay.settings import KubeRaySettings

        assert values.get("kuberay", {}).get("namespace", KubeRaySettings().namespace) in restricted
    for labels in namespaces.values():
        assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"


@pytest.mark.parametrize("stack", ["dev", "prod", "kubernetes"])
def test_every_pod_in_a_restricted_namespace_passes_the_restricted_profile(stack):
    r = render(stack_values(stack), stack)
    restricted = _restricted_namespaces(r)
    checked = 0
    for rs in r.of_type("kubernetes:ray.io/v1:RayService"):
        assert rs.inputs["metadata"]["namespace"] in restricted
        cluster = rs.inputs["spec"]["rayClusterConfig"]
        autoscaler = cluster.get("autoscalerOptions")
        sidecar = [{"name": "autoscaler", "securityContext": autoscaler.get("securityContext")}] if autoscaler else []
        for i, group in enumerate([cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]):
            assert restricted_violations(group["template"]["spec"], sidecar if i == 0 else []) == [], group
            checked += 1
    for sts in r.of_type("kubernetes:apps/v1:StatefulSet"):
        if sts.inputs["metadata"]["namespace"] in restricted:
            assert restricted_violations(sts.inputs["spec"]["template"]["spec"]) == [], sts.name
            checked += 1
    assert checked >= 2


def test_the_checker_flags_what_the_profile_forbids():
    bad = {"hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
           "containers": [{"name": "c", "securityContext": {"privileged": True}, "ports": [{"hostPort": 80}]}]}
    found = restricted_violations(bad)
    for expected in ("hostNetwork", "volume h", "c: privileged", "c: allowPrivilegeEscalation", "c: runAsNonRoot",
                     "c: seccompProfile", "c: hostPort", "c: capabilities"):
        assert any(f.startswith(expected) for f in found), expected
