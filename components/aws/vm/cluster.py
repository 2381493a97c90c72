"""RayVmCluster: a Ray cluster on EC2 running the bundled Serve image.

Head: one instance in a private subnet with an encrypted EBS checkpoint volume (GCS Redis data, model
cache) that outlives restarts of Ray and of the instance. Workers: launch template + auto scaling group in
private subnets. Serve is reached through a network load balancer: internal unless the stack asks for
internet-facing (then only `allowed_cidrs` get in, through the NLB's security group), TLS on 443 when a
certificate is given. The instances take Serve traffic from the NLB only; Session Manager, not SSH.
The Serve config lives in an SSM parameter: changing it (user_config, num_replicas) leaves the
instances alone and the head's sync timer validates and redeploys it in place. Changing the image changes
user data: a new head with a new volume (`head_generation`) starts beside the serving one, `up` waits until
it runs every application (an SSM association on it), then it joins the balancer and a new group of workers
joins it; the old head and workers go at the end of the update, once the balancer has the new head and the new
workers in service (a second association; the group's wait for its healthy targets).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Optional, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_random as random
from pydantic import Field

from rayserve_pulumi.args import arg
from rayserve_pulumi.aws.iam import assume_role_policy
from rayserve_pulumi.aws.network import ExistingNetwork, Network, network
from rayserve_pulumi.aws.types import AcmCertificateArn
from rayserve_pulumi.aws.vm import user_data
from rayserve_pulumi.config.aws import SSM_STANDARD_LIMIT
from rayserve_pulumi.config.checks import serve_port_errors
from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.config.serve import ValidatedServeConfig, app_urls, serve_port
from rayserve_pulumi.config.stack import MetricsSettings, VmSettings
from rayserve_pulumi.config.types import AllowListCidr
from rayserve_pulumi.inputs import checked, checked_or_none
from rayserve_pulumi.constants import DASHBOARD_PORT, GCS_PORT, INTERNAL_PORTS, TLS_POLICY, TLS_PORT
from rayserve_pulumi.rollout.settings import RolloutSettings

__all__ = [
    "ECS_AL2023_AMI", "CHECKPOINT_DEVICE", "VOLUME_OF_THIS_HEAD", "head_generation", "check_serve_port",
    "SESSION_MANAGER_ACTIONS", "ASSOCIATION_ACTIONS", "DOCUMENT_ACTIONS", "TARGET_HEALTH_ACTIONS", "head_ready_document",
    "IN_SERVICE_POLL_S", "head_in_service_document", "metadata_options",
    "node_policy", "ssm_port_forward", "head_args", "worker_args", "RayVmClusterArgs", "RayVmCluster",
]

ECS_AL2023_AMI = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"  # ships Docker
CHECKPOINT_DEVICE = "/dev/sdf"
VOLUME_OF_THIS_HEAD = "vol-of-this-head"  # stands for the volume's own id in what decides the head's generation


def head_generation(parts: Sequence[str]) -> str:
    """What replaces the head (its user data but for the volume id, its AMI, its subnet), as one hash: the
    checkpoint volume's replacement trigger. A new head then gets a new volume, attached to it beside the old
    head and its volume, which serve until Pulumi deletes them at the end of the update; with one volume the
    new attachment fails while the old head holds it (pulumi/pulumi-aws#2769). A fresh volume is also a fresh
    GCS: like KubeRay's new RayCluster on a spec change, a new image (maybe a new Ray) never restores the old
    cluster's GCS tables."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def check_serve_port(serve_config: dict) -> int:
    """The public Serve port must not be one of the ports kept inside the cluster: the validator's check, for
    programs that use this component with a Serve config of their own (a validated one is not checked again)."""
    if isinstance(serve_config, ValidatedServeConfig):
        return serve_port(serve_config)
    errors = serve_port_errors(serve_config, INTERNAL_PORTS)
    if errors:
        raise ConfigError(*errors)
    return serve_port(serve_config)


# Session Manager's channel, and nothing else of SSM: AmazonSSMManagedInstanceCore would also grant
# ssm:GetParameter(s) on every parameter of the account.
SESSION_MANAGER_ACTIONS = ["ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel",
                           "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
                           "ssmmessages:OpenDataChannel"]


def metadata_options() -> dict:
    """IMDSv2 only, hop limit 1: no bridged container reaches the instance's credentials. The Ray
    containers share the host's network, so the node agent also blocks their user from IMDS unless the
    nodes are given an S3 bucket (`--block-imds`)."""
    return {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1}


# What the SSM agent needs to run a State Manager association (the new head's readiness check, head_ready_document)
# through its classic channel: AmazonSSMManagedInstanceCore's association and message actions, the document
# itself only (its describe and get actions take a resource).
ASSOCIATION_ACTIONS = ["ssm:UpdateInstanceInformation", "ssm:ListAssociations", "ssm:ListInstanceAssociations",
                       "ssm:DescribeAssociation", "ssm:UpdateAssociationStatus", "ssm:UpdateInstanceAssociationStatus",
                       "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
                       "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply"]
DOCUMENT_ACTIONS = ["ssm:GetDocument", "ssm:DescribeDocument"]
# The new head asks the balancer whether it is in service (head_in_service_document); ELB's describe actions take
# no resource-level scope.
TARGET_HEALTH_ACTIONS = ["elasticloadbalancing:DescribeTargetHealth"]


def head_ready_document(port: int, timeout_s: int) -> str:
    """The SSM Command document a new head runs (the association `up` waits on): success once its user data (the
    node agent's `head`: Ray started, the Serve config deployed, every application RUNNING) ended without error
    (cloud-init's 2 is warnings only) and Serve answers on its port; else the end of what the agent printed."""
    script = ["status=0; cloud-init status --wait > /dev/null || status=$?",
              f"if [ $status -ne 1 ] && curl -fsS -o /dev/null http://127.0.0.1:{port}/-/healthz; then exit 0; fi",
              "echo \"the new Ray head did not come up (cloud-init status $status):\" >&2",
              "tail -n 20 /var/log/cloud-init-output.log >&2", "exit 1"]
    return _shell_document("A new Ray head runs every Serve application", "headReady", timeout_s, script)


def _shell_document(description: str, step: str, timeout_s: int, script: list[str],
                    parameters: Optional[dict] = None) -> str:
    """An SSM Command document of one shell step."""
    return json.dumps({"schemaVersion": "2.2", "description": description,
                       **({"parameters": parameters} if parameters else {}),
                       "mainSteps": [{"action": "aws:runShellScript", "name": step, "inputs": {
                           "timeoutSeconds": str(timeout_s), "runCommand": script}}]})


IN_SERVICE_POLL_S = 10


def head_in_service_document(timeout_s: int) -> str:
    """The SSM Command document a new head runs once attached to the balancer (the association `up` waits on before
    the old head goes): success once the balancer reports it healthy; else the last state and reason it gave. A
    newly registered target takes requests only after its registration and first health checks, which can take
    minutes. Its parameters are the association's, each held to the shape of an AWS id (SSM substitutes them)."""
    script = [f"deadline=$((SECONDS + {timeout_s})); state=unknown",
              "while [ $SECONDS -lt $deadline ]; do",
              "  state=$(aws elbv2 describe-target-health --region '{{ Region }}' --target-group-arn "
              "'{{ TargetGroupArn }}' --targets 'Id={{ InstanceId }},Port={{ Port }}' --query "
              "'TargetHealthDescriptions[0].TargetHealth.[State,Reason]' --output text 2>&1) || true",
              "  case $state in healthy*) exit 0 ;; esac",
              f"  sleep {IN_SERVICE_POLL_S}",
              "done",
              f"echo \"the balancer did not put the new Ray head in service within {timeout_s} s: $state\" >&2",
              "exit 1"]
    parameters = {
        "Region": {"type": "String", "allowedPattern": r"^[a-z]{2}(-[a-z]+)+-[0-9]$"},
        "TargetGroupArn": {"type": "String",
                           "allowedPattern": r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/"
                                             r"[A-Za-z0-9-]+/[0-9a-f]+$"},
        "InstanceId": {"type": "String", "allowedPattern": r"^i-[0-9a-f]{8,17}$"},
        "Port": {"type": "String", "allowedPattern": r"^[0-9]{1,5}$"},
    }
    return _shell_document("A new Ray head is in service behind the balancer", "headInService", timeout_s + 60,
                           script, parameters)


def node_policy(repository_arn: Optional[str], parameter_arns: list[str], s3_bucket_arn: Optional[str],
                session_manager: bool, document_arns: list[str]) -> str:
    """Least privilege: pull this one ECR repository, read the Serve config and auth token parameters, run the
    head's readiness and in-service associations, optional S3 on one bucket, optional Session Manager channels."""
    statements = [{"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": parameter_arns},
                  {"Effect": "Allow", "Action": ASSOCIATION_ACTIONS, "Resource": "*"},
                  {"Effect": "Allow", "Action": DOCUMENT_ACTIONS, "Resource": document_arns},
                  {"Effect": "Allow", "Action": TARGET_HEALTH_ACTIONS, "Resource": "*"}]
    if session_manager:
        statements.append({"Effect": "Allow", "Action": [a for a in SESSION_MANAGER_ACTIONS
                                                         if a not in ASSOCIATION_ACTIONS], "Resource": "*"})
    if repository_arn:
        statements += [
            {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                           "ecr:BatchCheckLayerAvailability"], "Resource": repository_arn},
        ]
    if s3_bucket_arn:
        statements.append({"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                           "Resource": [s3_bucket_arn, f"{s3_bucket_arn}/*"]})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _imds(s: VmSettings) -> list[str]:
    return [] if s.s3_bucket_arn else ["--block-imds"]


def _metrics(m: MetricsSettings) -> list[str]:
    return ["--metrics", "--scrape-interval", str(m.scrape_interval_s), "--prometheus-port", str(m.prometheus_port),
            "--grafana-port", str(m.grafana_port)] if m.enabled else []


def ssm_port_forward(instance_id: str, port: int, what: str) -> str:
    return (f"aws ssm start-session --target {instance_id} --document-name AWS-StartPortForwardingSession "
            f"--parameters portNumber={port},localPortNumber={port}  # then {what} at http://127.0.0.1:{port}")


def _env(serve_env: dict) -> list[str]:
    return [x for k, v in sorted(serve_env.items()) for x in ("--serve-env", f"{k}={v}")]


def _rollout(r: RolloutSettings) -> list[str]:
    """The head's sync steps a Serve config whose applications' code changed (import path, runtime_env) by `r`."""
    return ["--rollout", json.dumps(r.model_dump(exclude={"enabled"}), sort_keys=True, separators=(",", ":"))] \
        if r.enabled else []


def head_args(s: VmSettings, name: str, serve_env: dict, image: str, parameter: str, token_parameter: str, region: str,
              volume_id: str, metrics: Optional[MetricsSettings] = None,
              rollout: Optional[RolloutSettings] = None) -> list[str]:
    return ["--mode", "docker", "--image", image, "--region", region, "--config-ssm", parameter,
            *_env(serve_env),
            "--auth-token-ssm", token_parameter,
            "--volume-id", volume_id, "--gcs-redis", "--cluster-name", name,
            "--gcs-port", str(GCS_PORT), "--dashboard-port", str(DASHBOARD_PORT),
            "--poll-seconds", str(s.config_poll_seconds), *_imds(s), *_metrics(metrics or MetricsSettings()),
            *_rollout(rollout or RolloutSettings())]


def worker_args(s: VmSettings, serve_env: dict, image: str, region: str, token_parameter: str,
                head_ip: str) -> list[str]:
    return ["--mode", "docker", "--image", image, "--region", region, "--auth-token-ssm", token_parameter,
            *_env(serve_env),
            "--head-address", f"{head_ip}:{GCS_PORT}", *_imds(s)]


@dataclass(frozen=True)
class RayVmClusterArgs:
    settings: VmSettings = arg("instance types, worker counts, allowed CIDRs, volumes")
    serve_config: dict = arg("validated Serve config, kept in an SSM parameter")
    image: pulumi.Input[str] = arg("the Serve image, pinned by digest or version tag")
    image_repository_arn: Optional[pulumi.Input[str]] = arg("ECR repository the nodes may pull from", None)
    network: Optional[ExistingNetwork] = arg("a VPC that exists already (ids may come from another stack); "
                                             "default: a new VPC from settings.vpc_cidr", None)
    tls_certificate_arn: Optional[pulumi.Input[str]] = arg("an ACM certificate (e.g. another stack's output) for "
                                                           "the NLB's TLS listener; default settings'", None)
    allowed_cidrs: Optional[pulumi.Input[Sequence[str]]] = arg("who may reach an internet-facing NLB (e.g. another "
                                                               "stack's output); default settings'", None)
    tags: dict[str, str] = arg("AWS tags", default_factory=dict)
    serve_env: dict = arg("Serve's ingress and tuning as Ray environment (ServeSettings.runtime_env)",
                          default_factory=dict)
    metrics: MetricsSettings = arg("Prometheus and Grafana on the head's loopback", default_factory=MetricsSettings)
    rollout: RolloutSettings = arg("how the head's sync steps a Serve config whose applications' code changed "
                                   "(import path, runtime_env), and when it rolls it back",
                                   default_factory=RolloutSettings)


class RayVmCluster(pulumi.ComponentResource):
    """Outputs `app_urls` (through the NLB, per application), `head_private_ip`, `dashboard_hint`."""

    def __init__(self, name: str, args: RayVmClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:aws:RayVmCluster", name, None, opts)
        s, tags, child = args.settings, args.tags, pulumi.ResourceOptions(parent=self)
        port = check_serve_port(args.serve_config)
        if (error := s.open_endpoint_error("vm", cidrs_elsewhere=args.allowed_cidrs is not None)):
            raise ConfigError(f"rayserve: {error}")
        region = aws.get_region_output().region

        vpc = network(name, args.network, 1, dict(
            cidr_block=s.vpc_cidr, number_of_availability_zones=2, nat_gateways={"strategy": "Single"},
            enable_dns_hostnames=True, subnet_specs=[{"type": "Public"}, {"type": "Private"}], tags=tags), child)
        self.tls_certificate_arn = checked_or_none(args.tls_certificate_arn, AcmCertificateArn,
                                                   "tls_certificate_arn") or s.tls_certificate_arn
        self.lb_security_group = self._lb_security_group(name, s, port, vpc, args.allowed_cidrs, tags)
        self.security_group = self._security_group(name, port, vpc.vpc_id, self.lb_security_group.id, tags)

        config_json = json.dumps(args.serve_config, sort_keys=True)
        parameter = aws.ssm.Parameter(
            f"{name}-serve-config", name=f"/{name}/serve-config", type="String", value=config_json,
            tier="Advanced" if len(config_json) > SSM_STANDARD_LIMIT else "Standard",
            description="Ray Serve config applied in place by the head's sync timer", tags=tags, opts=child)

        token = random.RandomPassword(f"{name}-ray-auth-token", length=64, special=False, opts=child)
        token_parameter = aws.ssm.Parameter(
            f"{name}-ray-auth-token", name=f"/{name}/ray-auth-token", type="SecureString", value=token.result,
            description="Ray token authentication (dashboard, GCS, REST API)", tags=tags, opts=child)

        ready_document = aws.ssm.Document(
            f"{name}-head-ready", name=f"{name}-head-ready", document_type="Command", document_format="JSON",
            content=head_ready_document(port, s.head_ready_timeout_s), tags=tags, opts=child)
        in_service_document = aws.ssm.Document(
            f"{name}-head-in-service", name=f"{name}-head-in-service", document_type="Command",
            document_format="JSON", content=head_in_service_document(s.head_ready_timeout_s), tags=tags, opts=child)
        role = aws.iam.Role(f"{name}-node-role", assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
                            tags=tags, opts=child)
        aws.iam.RolePolicy(
            f"{name}-node-policy", role=role.id,
            policy=pulumi.Output.all(args.image_repository_arn, parameter.arn, token_parameter.arn,
                                     ready_document.arn, in_service_document.arn).apply(
                lambda a: node_policy(a[0], [a[1], a[2]], s.s3_bucket_arn, s.ssm_session_access, [a[3], a[4]])),
            opts=child)
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, opts=child)

        ami = s.ami_id or aws.ssm.get_parameter_output(name=ECS_AL2023_AMI).value
        head_subnet = vpc.private_subnet_ids[0]
        az = aws.ec2.get_subnet_output(id=head_subnet).availability_zone

        def head_script(volume_id: pulumi.Input[str]) -> pulumi.Output[str]:
            return pulumi.Output.all(args.image, parameter.name, token_parameter.name, region, volume_id).apply(
                lambda a: user_data.render("head", head_args(s, name, args.serve_env, *a, metrics=args.metrics,
                                                                rollout=args.rollout)))

        self.head_generation = pulumi.Output.all(head_script(VOLUME_OF_THIS_HEAD), ami, head_subnet).apply(
            head_generation)
        self.checkpoint_volume = aws.ebs.Volume(
            f"{name}-checkpoint", availability_zone=az, size=s.checkpoint_volume_gb, type="gp3", encrypted=True,
            tags={**tags, "Name": f"{name}-checkpoint"},
            opts=pulumi.ResourceOptions(parent=self, replacement_trigger=self.head_generation))
        head_user_data = head_script(self.checkpoint_volume.id)
        self.head = aws.ec2.Instance(
            f"{name}-head", ami=ami, instance_type=s.head_instance_type, subnet_id=head_subnet,
            vpc_security_group_ids=[self.security_group.id], iam_instance_profile=profile.name,
            metadata_options=metadata_options(),
            root_block_device={"encrypted": True, "volume_type": "gp3", "volume_size": s.root_volume_gb},
            user_data_base64=head_user_data.apply(user_data.encode), user_data_replace_on_change=True,
            tags={**tags, "Name": f"{name}-head", "ray-node-type": "head"}, opts=child)
        aws.ec2.VolumeAttachment(f"{name}-checkpoint-attach", device_name=CHECKPOINT_DEVICE,
                                 volume_id=self.checkpoint_volume.id, instance_id=self.head.id,
                                 stop_instance_before_detaching=True, opts=child)
        # `up` goes on (the head joins the balancer, new workers join it, then the old head goes) only once the new
        # head runs every application: the association is replaced with the head, and created only when it
        # succeeded there
        self.head_ready = self._on_head(f"{name}-head-ready", ready_document, s.head_ready_timeout_s)
        self._load_balancer(name, s, port, vpc, tags)
        # ... and the old head goes (at the end of the update) only once the balancer sends the new one requests
        self.head_in_service = self._on_head(
            f"{name}-head-in-service", in_service_document, s.head_ready_timeout_s + 120, after=self.head_target,
            parameters={"Region": region, "TargetGroupArn": self.target_group.arn, "InstanceId": self.head.id,
                        "Port": str(port)})
        worker_user_data = pulumi.Output.all(args.image, region, token_parameter.name, self.head.private_ip).apply(
            lambda a: user_data.render("worker", worker_args(s, args.serve_env, *a)))
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-worker-lt", image_id=ami, instance_type=s.worker_instance_type,
            iam_instance_profile={"arn": profile.arn}, vpc_security_group_ids=[self.security_group.id],
            metadata_options=metadata_options(),
            block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {
                "encrypted": "true", "volume_type": "gp3", "volume_size": s.root_volume_gb,
                "delete_on_termination": "true"}}],
            user_data=worker_user_data.apply(user_data.encode),
            update_default_version=True,
            tag_specifications=[{"resource_type": "instance",
                                 "tags": {**tags, "Name": f"{name}-worker", "ray-node-type": "worker"}}],
            tags=tags, opts=pulumi.ResourceOptions(parent=self, depends_on=[self.head_ready]))
        self.workers = aws.autoscaling.Group(
            f"{name}-workers", min_size=s.worker_min, max_size=s.worker_max, desired_capacity=s.worker_desired,
            vpc_zone_identifiers=vpc.private_subnet_ids,
            launch_template={"id": self.launch_template.id, "version": self.launch_template.latest_version.apply(str)},
            instance_refresh={"strategy": "Rolling", "preferences": {"min_healthy_percentage": 50}},
            health_check_type="EC2",
            target_group_arns=[self.target_group.arn],
            # A new head is a new cluster, and so is a new group of workers joining it: created beside the old
            # group, which serves on (with the old head) until the new workers are healthy behind the balancer,
            # then goes at the end of the update. Another worker type alone rolls the same group (instance_refresh).
            wait_for_elb_capacity=s.worker_desired, wait_for_capacity_timeout=f"{s.head_ready_timeout_s}s",
            tags=[{"key": k, "value": v, "propagate_at_launch": True} for k, v in tags.items()],
            opts=pulumi.ResourceOptions(parent=self, replacement_trigger=self.head_generation))

        base_url = self.load_balancer.dns_name.apply(
            lambda dns: f"https://{dns}" if self.tls_certificate_arn else f"http://{dns}:{port}")
        self.app_urls = base_url.apply(lambda url: app_urls(url, args.serve_config))
        self.head_private_ip = self.head.private_ip
        self.dashboard_hint = self.head.id.apply(lambda i: ssm_port_forward(i, DASHBOARD_PORT, "the Ray dashboard"))
        m = args.metrics
        self.grafana_hint = self.head.id.apply(lambda i: ssm_port_forward(i, m.grafana_port, "Grafana")) \
            if m.enabled else None
        self.prometheus_hint = self.head.id.apply(lambda i: ssm_port_forward(i, m.prometheus_port, "Prometheus")) \
            if m.enabled else None
        self.register_outputs({"app_urls": self.app_urls, "head_private_ip": self.head_private_ip,
                               "dashboard_hint": self.dashboard_hint, "serve_config_parameter": parameter.name})

    def _on_head(self, name: str, document: aws.ssm.Document, wait_s: int, after: Optional[pulumi.Resource] = None,
                 **kwargs) -> aws.ssm.Association:
        """An association running `document` on the head that `up` waits for (up to `wait_s`), replaced with the
        head so each new head is waited on; created after `after`."""
        return aws.ssm.Association(
            name, name=document.name, targets=[{"key": "InstanceIds", "values": [self.head.id]}],
            wait_for_success_timeout_seconds=wait_s, **kwargs,
            opts=pulumi.ResourceOptions(parent=self, replacement_trigger=self.head.id,
                                        depends_on=[after] if after else None))

    def _load_balancer(self, name: str, s: VmSettings, port: int, vpc: Network, tags: dict) -> None:
        """The NLB in front of Serve's proxies on every node: internal or internet-facing (its security group
        admits allowed_cidrs only), a TLS listener on 443 with the ACM certificate or TCP on Serve's port,
        health-checked on Serve's /-/healthz."""
        child = pulumi.ResourceOptions(parent=self)
        internal = s.load_balancer_scheme == "internal"
        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-nlb", load_balancer_type="network", internal=internal,
            subnets=vpc.private_subnet_ids if internal else vpc.public_subnet_ids,
            security_groups=[self.lb_security_group.id], enable_cross_zone_load_balancing=True, tags=tags, opts=child)
        self.target_group = aws.lb.TargetGroup(
            f"{name}-serve", port=port, protocol="TCP", target_type="instance", vpc_id=vpc.vpc_id,
            health_check={"protocol": "HTTP", "path": "/-/healthz", "port": str(port), "matcher": "200"},
            deregistration_delay=30, tags=tags, opts=child)
        # Only a head that runs every application joins: the balancer's check, Serve's /-/healthz, passes on a head
        # once its proxy has any route, replicas running or not (Serve's ProxyRouter.ready_for_traffic), so a new
        # head would take requests while its applications still deploy
        self.head_target = aws.lb.TargetGroupAttachment(
            f"{name}-serve-head", target_group_arn=self.target_group.arn, target_id=self.head.id, port=port,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.head_ready]))
        tls = {"protocol": "TLS", "port": TLS_PORT, "certificate_arn": self.tls_certificate_arn,
               "ssl_policy": TLS_POLICY} if self.tls_certificate_arn else {"protocol": "TCP", "port": port}
        aws.lb.Listener(f"{name}-serve", load_balancer_arn=self.load_balancer.arn,
                        default_actions=[{"type": "forward", "target_group_arn": self.target_group.arn}],
                        tags=tags, opts=child, **tls)

    def _lb_security_group(self, name: str, s: VmSettings, port: int, vpc: Network,
                           allowed: Optional[pulumi.Input[Sequence[str]]], tags: dict) -> aws.ec2.SecurityGroup:
        """The NLB's listener port from allowed_cidrs (internet-facing) or the VPC (internal); out to the nodes.
        CIDRs from another stack (`allowed`) are one rule of many blocks: their count is unknown until then."""
        child = pulumi.ResourceOptions(parent=self)
        sg = aws.ec2.SecurityGroup(f"{name}-nlb-sg", vpc_id=vpc.vpc_id, description=f"{name} Serve load balancer",
                                   tags=tags, opts=child)
        listener_port = TLS_PORT if self.tls_certificate_arn else port
        internet = s.load_balancer_scheme == "internet-facing"
        if internet and allowed is not None:
            aws.ec2.SecurityGroupRule(
                f"{name}-serve-allowed", type="ingress", security_group_id=sg.id, protocol="tcp",
                from_port=listener_port, to_port=listener_port,
                cidr_blocks=checked(allowed, Annotated[list[AllowListCidr], Field(min_length=1)], "allowed_cidrs"),
                description="Ray Serve through the NLB", opts=child)
        for i, cidr in enumerate([] if internet and allowed is not None else s.allowed_cidrs if internet
                                 else [vpc.cidr_block]):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-serve-{i}", security_group_id=sg.id, ip_protocol="tcp", from_port=listener_port,
                to_port=listener_port, cidr_ipv4=cidr, description="Ray Serve through the NLB", opts=child)
        aws.vpc.SecurityGroupEgressRule(f"{name}-nlb-egress", security_group_id=sg.id, ip_protocol="tcp",
                                        from_port=port, to_port=port, cidr_ipv4=vpc.cidr_block,
                                        description="to Serve on the nodes", opts=child)
        return sg

    def _security_group(self, name: str, port: int, vpc_id, lb_sg_id, tags: dict) -> aws.ec2.SecurityGroup:
        """Serve's port from the NLB only; dashboard, GCS and Ray internals only within the group."""
        child = pulumi.ResourceOptions(parent=self)
        sg = aws.ec2.SecurityGroup(f"{name}-sg", vpc_id=vpc_id, description=f"{name} Ray cluster",
                                   tags=tags, opts=child)
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-serve-from-nlb", security_group_id=sg.id, ip_protocol="tcp", from_port=port, to_port=port,
            referenced_security_group_id=lb_sg_id, description="Ray Serve from the load balancer", opts=child)
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-intra-cluster", security_group_id=sg.id, ip_protocol="-1",
            referenced_security_group_id=sg.id, description="Ray GCS, dashboard and internals between nodes",
            opts=child)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-egress", security_group_id=sg.id, ip_protocol="-1", cidr_ipv4="0.0.0.0/0",
            description="image pulls, SSM, package mirrors", opts=child)
        return sg
