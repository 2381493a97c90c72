"""Run a stack program under the Pulumi SDK's mocks and record every resource it declares.

What `rayserve render` prints and what the tests assert on: the inputs each resource would be created
with. Values only a cloud provider can compute (ids, ARNs, load-balancer names, digests) are
placeholders, and so are generated secrets. Pulumi's mock monitor rebuilds resource references on a
thread of its own; the patch below keeps them as ids there (it is applied when this module is imported).
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

__all__ = [
    "DEFAULT_REGION", "REGION", "stack_region", "EKS_CLUSTER_SG", "eks_security_groups", "FAKE_OUTPUTS", "READ_OUTPUTS", "FAKE_CALLS", "Declared", "Rendered", "unwrap_secrets", "mock_arn", "preview",
]

EKS_CLUSTER_SG = "sg-0eks0cluster0000"  # the security group EKS creates for a cluster


def eks_security_groups(inputs: dict) -> dict:
    """pulumi-eks' security-group outputs: its own cluster and node groups, or with skipDefaultSecurityGroups
    the group EKS creates for the cluster as both (pulumi-eks' documentation of both outputs)."""
    if inputs.get("skipDefaultSecurityGroups"):
        return {"clusterSecurityGroupId": EKS_CLUSTER_SG, "nodeSecurityGroupId": EKS_CLUSTER_SG}
    return {"clusterSecurityGroupId": "sg-0pulumi0eks0cluster", "nodeSecurityGroupId": "sg-0pulumi0eks0nodes"}


DEFAULT_REGION = "us-west-2"  # the region the mock outputs below are written in
REGION: contextvars.ContextVar[str] = contextvars.ContextVar("region", default=DEFAULT_REGION)

# Outputs the providers would compute, keyed by resource type (Pulumi schema names).
FAKE_OUTPUTS: dict[str, Callable[[str, dict], dict]] = {
    "awsx:ec2:Vpc": lambda n, i: {"vpcId": f"vpc-{n}", "publicSubnetIds": ["subnet-pub-a", "subnet-pub-b", "subnet-pub-c"],
                                   "privateSubnetIds": ["subnet-priv-a", "subnet-priv-b", "subnet-priv-c"]},
    "eks:index:Cluster": lambda n, i: {"kubeconfigJson": json.dumps({"apiVersion": "v1", "clusters": [{"name": n}]}),
                                       "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC",
                                       "oidcProviderUrl": "https://oidc.eks.us-west-2.amazonaws.com/id/ABC",
                                       **eks_security_groups(i)},
    "aws:ecr/repository:Repository": lambda n, i: {"repositoryUrl": f"123456789012.dkr.ecr.us-west-2.amazonaws.com/{i.get('name')}",
                                                   "registryId": "123456789012",
                                                   "arn": f"arn:aws:ecr:us-west-2:123456789012:repository/{i.get('name')}"},
    "docker-build:index:Image": lambda n, i: {"digest": "sha256:" + "ab" * 32, "ref": (i.get("tags") or ["x"])[0]},
    "random:index/randomPassword:RandomPassword": lambda n, i: {"result": f"(secret: random password {n}, generated at deploy)"},
    "aws:ec2/instance:Instance": lambda n, i: {"privateIp": "10.20.1.10", "publicIp": "203.0.113.10",
                                               "publicDns": "ec2-203-0-113-10.compute.amazonaws.com"},
    "aws:ec2/eip:Eip": lambda n, i: {"publicIp": "203.0.113.20", "publicDns": "ec2-203-0-113-20.compute.amazonaws.com"},
    "aws:lb/loadBalancer:LoadBalancer": lambda n, i: {"dnsName": f"{n}-0123456789.elb.us-west-2.amazonaws.com"},
    "aws:iam/role:Role": lambda n, i: {"name": i.get("name") or n},  # Pulumi autonames from the resource name
    "aws:sqs/queue:Queue": lambda n, i: {"name": i.get("name") or n, "url": f"https://sqs.us-west-2.amazonaws.com/123456789012/{n}"},
    # another stack's outputs are not known here: a StackReference reads none (get_output gives None)
    "pulumi:pulumi:StackReference": lambda n, i: {"outputs": {}, "secretOutputNames": []},
    "kubernetes:ray.io/v1:RayService": lambda n, i: {"status": {"activeServiceStatus": {"applicationStatuses": {
        app["name"]: {"status": "RUNNING"}
        for app in (yaml.safe_load((i.get("spec") or {}).get("serveConfigV2") or "{}") or {}).get("applications", [])}}}},
}
# What reading a live object (`Resource.get`) returns: the Services KubeRay creates for a RayService.
READ_OUTPUTS: dict[str, Callable[[str, str], dict]] = {
    "kubernetes:core/v1:Service": lambda n, id_: {
        "metadata": {"name": id_.split("/")[-1], "namespace": id_.split("/")[0]},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"hostname": f"{id_.split('/')[-1]}.elb.us-west-2.amazonaws.com"}]}}},
    "kubernetes:gateway.networking.k8s.io/v1:Gateway": lambda n, id_: {
        "metadata": {"name": id_.split("/")[-1], "namespace": id_.split("/")[0]},
        "status": {"addresses": [{"type": "Hostname", "value": f"{id_.split('/')[-1]}.gateway.example"}]}},
}
FAKE_CALLS: dict[str, dict] = {
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": {"userName": "AWS", "password": "token", "proxyEndpoint": "https://x"},
    "aws:ssm/getParameter:getParameter": {"value": "ami-0123456789abcdef0", "name": "p", "type": "String"},
    "aws:ec2/getSubnet:getSubnet": {"availabilityZone": "us-west-2a", "id": "subnet-pub-a"},
    "aws:ec2/getVpc:getVpc": {"cidrBlock": "10.0.0.0/16", "id": "vpc-0123456789abcdef0"},
    "aws:index/getCallerIdentity:getCallerIdentity": {"accountId": "123456789012"},
    "aws:index/getRegion:getRegion": {"name": "us-west-2", "region": "us-west-2"},
    "aws:index/getPartition:getPartition": {"partition": "aws"},
}


@dataclass
class Declared:
    type: str
    name: str
    parent: str
    inputs: dict
    state: dict
    dependencies: list[str]
    options: dict


@dataclass
class Rendered:
    resources: list[Declared] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    reads: list[tuple[str, str]] = field(default_factory=list)  # (type, id) of live objects read, not declared

    def of_type(self, type_: str) -> list[Declared]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name_contains: str = "") -> Declared:
        found = [r for r in self.of_type(type_) if name_contains in r.name]
        assert len(found) == 1, f"expected one {type_} named *{name_contains}*, got {[r.name for r in found]}"
        return found[0]

    def types(self) -> set[str]:
        return {r.type for r in self.resources}


def _redacted(value):
    """A secret's shape with every value replaced: a Secret's data map keeps its keys, so it stays valid."""
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return "(secret)"


def unwrap_secrets(value, redact: bool = False):
    """Inputs as declared: secrets (wrapped as {sig: secret, value: v}) as their value, or redacted value by
    value; whole numbers as integers (the engine's wire format carries every number as a double)."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _redacted(unwrap_secrets(value["value"])) if redact else unwrap_secrets(value["value"])
        return {k: unwrap_secrets(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v, redact) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _in_region(value, region: str):
    """Mock outputs in the stack's region (they are written for DEFAULT_REGION)."""
    if isinstance(value, str):
        return value.replace(DEFAULT_REGION, region)
    if isinstance(value, dict):
        return {k: _in_region(v, region) for k, v in value.items()}
    if isinstance(value, list):
        return [_in_region(v, region) for v in value]
    return value


@contextlib.contextmanager
def stack_region(region: Optional[str]):
    """Render in `region` (a stack's `aws:region`): the region invoke and every mock URL and ARN."""
    token = REGION.set(region or DEFAULT_REGION)
    try:
        yield
    finally:
        REGION.reset(token)


def mock_arn(name: str) -> str:
    return f"arn:aws:mock::123456789012:{name}"


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, redact: bool, region: str = DEFAULT_REGION, reads: Optional[list] = None):
        super().__init__()
        self.redact = redact
        self.region = region
        self.inputs: dict[tuple[str, str], dict] = {}
        self.reads = reads if reads is not None else []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.resource_id and args.typ in READ_OUTPUTS:  # a read of a live object, not a declaration
            self.reads.append((args.typ, args.resource_id))
            return args.resource_id, _in_region(READ_OUTPUTS[args.typ](args.name, args.resource_id), self.region)
        self.inputs[(args.typ, args.name)] = unwrap_secrets(args.inputs, self.redact)
        fake = FAKE_OUTPUTS.get(args.typ)
        # Custom resources echo their inputs; remote components' outputs differ in shape from their inputs.
        echoed = args.inputs if args.custom else {}
        state = {**echoed, **(_in_region(fake(args.name, args.inputs), self.region) if fake else {})}
        if args.custom and args.typ.startswith("aws:"):
            state.setdefault("arn", mock_arn(args.name))
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return _in_region(FAKE_CALLS.get(args.token, {}), self.region)


def _refs_as_ids_off_main_thread(lookup):
    """The mock monitor deserialises inputs on another thread; rebuilding resource references there
    ties their futures to that thread's loop. Off the main thread, keep references as ids/URNs."""

    def wrapped(*args, **kwargs):
        return lookup(*args, **kwargs) if threading.current_thread() is threading.main_thread() else None

    return wrapped


rpc.get_resource_module = _refs_as_ids_off_main_thread(rpc.get_resource_module)
rpc.get_resource_package = _refs_as_ids_off_main_thread(rpc.get_resource_package)


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks, rendered: Rendered):
        super().__init__(mocks)
        self.rendered = rendered

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            urn = response.urn
            reg = self.resources.get(urn)
            self.rendered.resources.append(Declared(
                type=request.type, name=request.name, parent=request.parent,
                inputs=self.mocks.inputs.get((request.type, request.name), {}),
                state=dict(reg.state) if reg else {},
                dependencies=list(request.dependencies),
                options={"retain_on_delete": request.retainOnDelete,
                         "additional_secret_outputs": list(request.additionalSecretOutputs),
                         "delete_before_replace": request.deleteBeforeReplace,
                         "replace_on_changes": list(request.replaceOnChanges),
                         "ignore_changes": list(request.ignoreChanges),
                         "replacement_trigger": json_format.MessageToDict(request.replacement_trigger)
                         if request.HasField("replacement_trigger") else None,
                         "provider": request.provider or None},
            ))
        return response


def preview(values: dict[str, Any], stack: str = "preview", program: Optional[Callable[[], dict]] = None,
            into: Optional[Rendered] = None, program_dir: Optional[Path] = None, redact: bool = False,
            validated: Optional[tuple] = None) -> Rendered:
    """Run `program` (default: rayserve_pulumi.program.build) with these `rayserve:` values under mocks.

    `into` collects what was declared even when the program raises; `redact` shows secret inputs as
    "(secret)" instead of their mock values; `validated` (StackConfig, Serve config) spares the program its
    own validation of the same values."""
    from rayserve_pulumi.program import build

    rendered = into if into is not None else Rendered()
    mocks = _Mocks(redact, REGION.get(), rendered.reads)
    pulumi.runtime.set_mocks(mocks, project="rayserve", stack=stack, preview=False,
                             monitor=_RecordingMonitor(mocks, rendered))
    pulumi.runtime.set_all_config({f"rayserve:{k}": v if isinstance(v, str) else json.dumps(v)
                                   for k, v in values.items()})

    @pulumi.runtime.test
    def run():
        outputs = (program or (lambda: build(values, program_dir=program_dir, validated=validated)))()
        keys = sorted(outputs)

        async def secrets():
            return {k for k in keys if isinstance(outputs[k], pulumi.Output) and await outputs[k].is_secret()}

        return pulumi.Output.all(pulumi.Output.from_input(outputs), pulumi.Output.from_input(secrets())).apply(
            lambda res: (rendered.outputs.update(res[0]), rendered.secret_outputs.update(res[1])))

    run()
    return rendered
