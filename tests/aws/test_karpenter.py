"""Nodes that scale (#24): Karpenter on the prod stack, rendered under Pulumi's mocks.

Karpenter's CRDs are not in this repository, so NodePools and EC2NodeClasses are checked against the rules
of its v1.14.1 CRDs that our objects reach, written out below (CEL rules evaluated with cel-python; the
enums and patterns as regular expressions). That Karpenter launches and consolidates nodes as expected is
not verified here (no AWS)."""
from __future__ import annotations

import json
import re

import pytest

from rayserve_pulumi.aws.eks.karpenter import INTERRUPTION_EVENTS, NAMESPACE, SERVICE_ACCOUNT
from rayserve_pulumi.constants import DO_NOT_DISRUPT, KARPENTER_CHART_REPOSITORY, KARPENTER_VERSION, SERVICE_LABEL

celpy = pytest.importorskip("celpy", reason="cel-python is a test dependency")

# From karpenter.sh_nodepools.yaml (v1.14.1): the rules our NodePools reach.
DURATION = re.compile(r"^(([0-9]+(s|m|h))+|Never)$")
BUDGET_NODES = re.compile(r"^((100|[0-9]{1,2})%|[0-9]+)$")
QUANTITY = re.compile(r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
LABEL_KEY_RULES = [  # each label key of spec.template.metadata.labels and each requirement key
    'self in ["karpenter.sh/capacity-type", "karpenter.sh/nodepool"] || !self.find("^([^/]+)").endsWith("karpenter.sh")',
    'self != "karpenter.sh/nodepool"',
    'self != "kubernetes.io/hostname"',
]
REQUIREMENTS_RULES = [
    "self.all(x, x.operator == 'In' ? x.values.size() != 0 : true)",
    "self.all(x, (x.operator == 'In' && has(x.minValues)) ? x.values.size() >= x.minValues : true)",
]
BUDGETS_RULE = "self.all(x, has(x.schedule) == has(x.duration))"
OPERATORS = {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Gte", "Lte"}
POLICIES = {"WhenEmpty", "WhenEmptyOrUnderutilized", "Balanced"}
EFFECTS = {"NoSchedule", "PreferNoSchedule", "NoExecute"}


def _find(value, pattern):
    """Kubernetes' CEL regex extension: the first match of `pattern` in the string, or ""."""
    match = re.search(str(pattern), str(value))
    return celpy.celtypes.StringType(match.group(0) if match else "")


def _cel(rule: str, value) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(rule), functions={"find": _find})
    return bool(program.evaluate({"self": celpy.json_to_cel(value)}))


def nodepool_errors(pool: dict) -> list[str]:
    errors = []
    spec, template = pool["spec"], pool["spec"]["template"]
    keys = [*template["metadata"].get("labels", {}), *(r["key"] for r in template["spec"]["requirements"])]
    errors += [f"key {k}: {rule}" for k in keys for rule in LABEL_KEY_RULES if not _cel(rule, k)]
    errors += [f"requirements: {rule}" for rule in REQUIREMENTS_RULES if not _cel(rule, template["spec"]["requirements"])]
    errors += [f"operator {r['operator']}" for r in template["spec"]["requirements"] if r["operator"] not in OPERATORS]
    ref = template["spec"]["nodeClassRef"]
    errors += [f"nodeClassRef.{k} empty" for k in ("group", "kind", "name") if not ref.get(k)]
    errors += [f"taint effect {t['effect']}" for t in template["spec"].get("taints", []) if t["effect"] not in EFFECTS]
    for key in ("expireAfter",):
        if key in template["spec"] and not DURATION.match(template["spec"][key]):
            errors.append(f"{key} {template['spec'][key]}")
    disruption = spec["disruption"]
    if disruption["consolidationPolicy"] not in POLICIES:
        errors.append(f"consolidationPolicy {disruption['consolidationPolicy']}")
    if not DURATION.match(disruption["consolidateAfter"]):
        errors.append(f"consolidateAfter {disruption['consolidateAfter']}")
    if not _cel(BUDGETS_RULE, disruption.get("budgets", [])):
        errors.append(BUDGETS_RULE)
    errors += [f"budget nodes {b['nodes']}" for b in disruption.get("budgets", []) if not BUDGET_NODES.match(b["nodes"])]
    errors += [f"limit {k}={v}" for k, v in spec.get("limits", {}).items() if not QUANTITY.match(str(v))]
    return errors


def _pools(r) -> dict[str, dict]:
    return {p.inputs["metadata"]["name"]: p.inputs for p in r.of_type("kubernetes:karpenter.sh/v1:NodePool")}


def test_prod_node_pools_pass_the_karpenter_crd_rules_and_the_rules_catch_a_broken_pool(rendered):
    pools = _pools(rendered["prod"])
    assert set(pools) == {"cpu", "gpu"}
    assert {n: nodepool_errors(p) for n, p in pools.items()} == {"cpu": [], "gpu": []}
    broken = json.loads(json.dumps(pools["cpu"]))
    broken["spec"]["template"]["metadata"]["labels"]["karpenter.sh/team"] = "x"
    broken["spec"]["template"]["spec"]["requirements"].append({"key": "kubernetes.io/hostname", "operator": "In", "values": []})
    broken["spec"]["disruption"]["budgets"] = [{"nodes": "150%", "schedule": "@daily"}]
    found = nodepool_errors(broken)
    assert len(found) == 5, found  # the domain, the hostname key, In with no values, schedule w/o duration, 150%


def test_each_pool_references_its_own_node_class(rendered):
    r = rendered["prod"]
    classes = {c.inputs["metadata"]["name"] for c in r.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")}
    for name, pool in _pools(r).items():
        ref = pool["spec"]["template"]["spec"]["nodeClassRef"]
        assert (ref["group"], ref["kind"], ref["name"]) == ("karpenter.k8s.aws", "EC2NodeClass", name)
        assert ref["name"] in classes


def _lands_on(pod: dict, pool: dict) -> bool:
    """The scheduler's two placement checks: the pod's nodeSelector among the node's labels, and every
    taint of the node tolerated."""
    labels = pool["spec"]["template"]["metadata"]["labels"]
    taints = pool["spec"]["template"]["spec"].get("taints", [])
    selected = (pod.get("nodeSelector") or {}).items() <= labels.items()
    tolerated = all(any(t["key"] == taint["key"] and t.get("effect", taint["effect"]) == taint["effect"]
                        and t["operator"] in ("Exists", "Equal") for t in pod.get("tolerations", []))
                    for taint in taints)
    return selected and tolerated


def test_ray_workers_land_on_their_pool_only_and_gpu_nodes_carry_the_gpu_taint(rendered):
    r = rendered["prod"]
    pools = _pools(r)
    cluster = r.one("kubernetes:ray.io/v1:RayService").inputs["spec"]["rayClusterConfig"]
    workers = {w["groupName"]: w["template"]["spec"] for w in cluster["workerGroupSpecs"]}
    assert {name: [p for p in pools if _lands_on(pod, pools[p])] for name, pod in workers.items()} == \
        {"cpu": ["cpu"], "gpu": ["gpu"]}
    # a CPU pod without the toleration would never take a GPU node
    assert not _lands_on({"nodeSelector": {}}, pools["gpu"])
    gpu = pools["gpu"]["spec"]
    assert gpu["limits"]["nvidia.com/gpu"] == "4" and "nvidia.com/gpu" not in pools["cpu"]["spec"]["limits"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    assert not any(_lands_on(head, p) for p in pools.values())  # the head stays on the managed system group


def test_the_head_is_never_disrupted_voluntarily(rendered):
    """Karpenter's do-not-disrupt on the head pod, and a PDB that selects the head and no worker."""
    r = rendered["prod"]
    rs = r.one("kubernetes:ray.io/v1:RayService").inputs
    cluster = rs["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]["template"]["metadata"]
    assert head["annotations"] == {DO_NOT_DISRUPT: "true"}
    pdb = r.one("kubernetes:policy/v1:PodDisruptionBudget", "head-pdb").inputs
    assert pdb["metadata"]["namespace"] == rs["metadata"]["namespace"] and pdb["spec"]["minAvailable"] == 1
    selector = pdb["spec"]["selector"]["matchLabels"]
    # KubeRay adds ray.io/node-type to the template's labels on the pods it creates
    head_pod = {**head["labels"], "ray.io/node-type": "head"}
    worker_pods = [{**w["template"]["metadata"]["labels"], "ray.io/node-type": "worker"} for w in cluster["workerGroupSpecs"]]
    assert selector.items() <= head_pod.items() and selector[SERVICE_LABEL] == rs["metadata"]["name"]
    assert not any(selector.items() <= w.items() for w in worker_pods)


def test_karpenter_is_pinned_with_its_crds_as_a_chart_of_their_own(rendered):
    r = rendered["prod"]
    releases = {x.inputs["name"]: x.inputs for x in r.of_type("kubernetes:helm.sh/v3:Release")}
    crd, controller = releases["karpenter-crd"], releases["karpenter"]
    assert crd["chart"] == f"{KARPENTER_CHART_REPOSITORY}/karpenter-crd" and crd["version"] == KARPENTER_VERSION
    assert controller["chart"] == f"{KARPENTER_CHART_REPOSITORY}/karpenter" and controller["version"] == KARPENTER_VERSION
    assert controller["skipCrds"] is True and controller["namespace"] == NAMESPACE
    assert re.fullmatch(r"\d+\.\d+\.\d+", KARPENTER_VERSION)
    values = controller["values"]
    assert values["settings"]["clusterName"] == r.one("eks:index:Cluster").inputs["name"]
    queue = r.one("aws:sqs/queue:Queue", "karpenter")
    assert values["settings"]["interruptionQueue"] == queue.state["name"]
    role = r.one("aws:iam/role:Role", "karpenter-controller")
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"] == role.state["arn"]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}" in trust["Condition"]["StringEquals"].values()
    # node pools are declared once the controller (and so its webhooks and CRDs) are there
    for pool in r.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        assert any(d.endswith("::rayserve-prod-eks-karpenter-controller") and "helm.sh" in d for d in pool.dependencies)


def _statements(r) -> dict[str, dict]:
    policy = json.loads(r.one("aws:iam/policy:Policy", "karpenter-controller").inputs["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def test_the_controller_policy_is_scoped_to_this_cluster(rendered):
    r = rendered["prod"]
    statements = _statements(r)
    cluster = r.one("eks:index:Cluster").inputs["name"]
    node_role = r.one("aws:iam/role:Role", "eks-node-role").state["arn"]
    assert statements["PassNodeRoleToEc2"]["Resource"] == node_role
    assert statements["PassNodeRoleToEc2"]["Condition"]["StringEquals"]["iam:PassedToService"][0] == "ec2.amazonaws.com"
    for sid in ("LaunchFromOwnLaunchTemplates", "TagOwnInstances", "DeleteOwn", "ManageOwnInstanceProfiles"):
        assert statements[sid]["Condition"]["StringEquals"][f"aws:ResourceTag/kubernetes.io/cluster/{cluster}"] == "owned"
    for sid in ("LaunchTaggedForThisCluster", "TagOnLaunch", "CreateOwnInstanceProfiles"):
        assert statements[sid]["Condition"]["StringEquals"][f"aws:RequestTag/kubernetes.io/cluster/{cluster}"] == "owned"
    assert statements["ReadInterruptionQueue"]["Resource"] == r.one("aws:sqs/queue:Queue", "karpenter").state["arn"]
    assert statements["DescribeCluster"]["Resource"].endswith(f":cluster/{cluster}")
    # every write is conditioned or scoped to one resource; only reads and listings are on "*"
    for sid, s in statements.items():
        actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        if s["Resource"] == "*" and "Condition" not in s:
            assert all(re.match(r"^(pricing:Get|iam:List)", a) for a in actions), sid


def test_interruption_events_reach_the_queue_over_tls_only(rendered):
    r = rendered["prod"]
    queue = r.one("aws:sqs/queue:Queue", "karpenter")
    assert queue.inputs["sqsManagedSseEnabled"] is True
    rules = {x.name: json.loads(x.inputs["eventPattern"]) for x in r.of_type("aws:cloudwatch/eventRule:EventRule")}
    targets = r.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert sorted((p["source"][0], p["detail-type"][0]) for p in rules.values()) == sorted(INTERRUPTION_EVENTS.values())
    assert {t.inputs["arn"] for t in targets} == {queue.state["arn"]} and len(targets) == len(rules)
    policy = json.loads(r.one("aws:sqs/queuePolicy:QueuePolicy", "karpenter").inputs["policy"])
    deny = next(s for s in policy["Statement"] if s["Effect"] == "Deny")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_dev_without_karpenter_declares_none_of_it(rendered):
    assert not [x for x in rendered["dev"].resources if "karpenter" in x.type.lower() or "karpenter" in x.name]
