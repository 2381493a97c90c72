"""Ray Serve on EKS where the VPC, the TLS certificate, the admitted source ranges and the image come from
other stacks: each is a `StackReference` output passed straight into the component's args, and each is
checked (VPC and subnet ids, the ACM ARN, the CIDRs, the pinned image) once its value is known."""
import pulumi

from rayserve_pulumi.aws.eks import EksPlatform, EksPlatformArgs
from rayserve_pulumi.aws.network import ExistingNetwork
from rayserve_pulumi.config import (
    EksSettings, HeadSettings, ImageSettings, NodeGroup, RayServiceSettings, ServeSettings, WorkerGroup,
    build_serve_config,
)

config = pulumi.Config()
network = pulumi.StackReference(config.require("network_stack"))
images = pulumi.StackReference(config.require("image_stack"))

platform = EksPlatform("serving", EksPlatformArgs(
    eks=EksSettings(node_groups=[NodeGroup(name="cpu", instance_types=["m6i.2xlarge"], desired_size=2)]),
    ray_service=RayServiceSettings(
        name="serving", namespace="ray", service_type="LoadBalancer", load_balancer_scheme="internet-facing",
        head=HeadSettings(cpu="2", memory="6Gi", node_group="cpu"),
        worker_groups=[WorkerGroup(name="cpu", cpu="2", memory="6Gi", node_group="cpu")],
    ),
    serve_config=build_serve_config(ServeSettings(applications=["fruit", "calc"])),
    image=ImageSettings(),
    image_uri=images.get_output("image_ref"),
    network=ExistingNetwork(vpc_id=network.get_output("vpc_id"),
                            private_subnet_ids=network.get_output("private_subnet_ids"),
                            public_subnet_ids=network.get_output("public_subnet_ids")),
    serve_tls_certificate_arn=network.get_output("serve_certificate_arn"),
    allowed_cidrs=network.get_output("office_cidrs"),
))
pulumi.export("app_urls", platform.app_urls)
pulumi.export("dashboard", platform.dashboard)
