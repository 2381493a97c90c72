"""A connection model over what a stack declares: may A open a TCP/UDP connection to B on a port?

Two layers, both must allow it:
- security groups: B's groups admit the port from one of A's groups or from A's address, and A's groups let it
  out; a group's rules are read from every way the stack declares them (inline ingress/egress, VPC rule
  resources, EC2 rule resources);
- NetworkPolicies (pods only): if any policy of B's namespace selects B for Ingress, one of them admits A on the
  port; if any policy of A's namespace selects A for Egress, one of them admits B.

Assumptions, each with its source:
- A1 (Amazon EKS User Guide, "View Amazon EKS security group requirements for clusters"; "Customize managed
  nodes with launch templates"): EKS creates a cluster security group, attaches it to the control plane's
  network interfaces and to the nodes of managed node groups whose launch template names no security group;
  by default it admits all traffic from itself and lets all traffic out.
- A2 (Amazon VPC CNI: pods get secondary IPs of the node's interfaces; security groups for pods are off unless
  configured): a pod carries its node's security groups and an address in the VPC.
- A3 (KubeRay): head pods carry `ray.io/node-type: head`, worker pods `ray.io/node-type: worker`, besides the
  labels of their template.
- A5 (AWS Load Balancer Controller, "Network Load Balancer" and "Security group for NLB"): for a Service
  annotated `aws-load-balancer-type: external` it builds an NLB carrying a frontend group that admits the
  listener port from loadBalancerSourceRanges (the VPC's range for an internal NLB without them) and the
  shared backend group, and admits the target port from the backend group on the targets' group; with
  `nlb-target-type: ip` the targets are the pods.
- A6 (Karpenter, "NodeClasses": securityGroupSelectorTerms): a Karpenter node carries exactly the groups its
  EC2NodeClass selects (by id here), and its pods carry them (A2).
- A4: a security group created with no egress rule by pulumi-aws' SecurityGroup keeps AWS' default
  allow-all egress only when it is the EKS cluster group (A1); groups the stack declares state their egress.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

ALL = "-1"


@dataclass(frozen=True)
class Rule:
    protocol: str
    from_port: int
    to_port: int
    cidrs: tuple = ()
    groups: tuple = ()

    def admits(self, protocol: str, port: int, ip: Optional[str], groups: set[str]) -> bool:
        if self.protocol not in (ALL, protocol):
            return False
        if self.protocol != ALL and not self.from_port <= port <= self.to_port:
            return False
        in_cidr = ip is not None and any(ipaddress.ip_address(ip) in ipaddress.ip_network(c) for c in self.cidrs)
        return in_cidr or bool(groups & set(self.groups))


@dataclass
class Endpoint:
    name: str
    ip: Optional[str] = None
    groups: set[str] = field(default_factory=set)
    namespace: Optional[str] = None  # a pod's
    labels: dict = field(default_factory=dict)


@dataclass
class Network:
    ingress: dict[str, list[Rule]] = field(default_factory=dict)  # security group id -> rules
    egress: dict[str, list[Rule]] = field(default_factory=dict)
    policies: list[dict] = field(default_factory=list)  # NetworkPolicy manifests
    namespaces: dict[str, dict] = field(default_factory=dict)  # name -> labels

    def add(self, table: str, group: str, rule: Rule) -> None:
        getattr(self, table).setdefault(group, []).append(rule)

    # --- security groups -------------------------------------------------------------------------------------
    def _sg_allows(self, src: Endpoint, dst: Endpoint, protocol: str, port: int) -> bool:
        if not dst.groups:  # not in AWS (the internet, a cluster-internal name): only src's egress applies
            inbound = True
        else:
            inbound = any(r.admits(protocol, port, src.ip, src.groups) for g in dst.groups for r in self.ingress.get(g, []))
        outbound = not src.groups or any(r.admits(protocol, port, dst.ip, dst.groups)
                                         for g in src.groups for r in self.egress.get(g, []))
        return inbound and outbound

    # --- NetworkPolicies -------------------------------------------------------------------------------------
    @staticmethod
    def _selects(selector: dict, labels: dict) -> bool:
        return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())

    def _peer_matches(self, peer: dict, policy_ns: str, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            return other.ip is not None and ipaddress.ip_address(other.ip) in ipaddress.ip_network(peer["ipBlock"]["cidr"])
        if other.namespace is None:
            return False
        if "namespaceSelector" in peer:
            if not self._selects(peer["namespaceSelector"], self.namespaces.get(other.namespace, {})):
                return False
        elif other.namespace != policy_ns:
            return False
        return "podSelector" not in peer or self._selects(peer["podSelector"], other.labels)

    @staticmethod
    def _port_matches(rule: dict, protocol: str, port: int) -> bool:
        ports = rule.get("ports")
        return not ports or any(p.get("protocol", "TCP").lower() == protocol and p.get("port") in (None, port)
                                for p in ports)

    def _np_allows(self, pod: Endpoint, other: Endpoint, kind: str, protocol: str, port: int) -> bool:
        direction, peers = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
        selecting = [p for p in self.policies if p["metadata"]["namespace"] == pod.namespace
                     and kind in p["spec"]["policyTypes"] and self._selects(p["spec"]["podSelector"], pod.labels)]
        if not selecting:
            return True
        return any(self._port_matches(rule, protocol, port) and
                   (not rule.get(peers) or any(self._peer_matches(peer, p["metadata"]["namespace"], other)
                                               for peer in rule[peers]))
                   for p in selecting for rule in p["spec"].get(direction) or [])

    def allows(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "tcp") -> bool:
        return (self._sg_allows(src, dst, protocol, port)
                and (dst.namespace is None or self._np_allows(dst, src, "Ingress", protocol, port))
                and (src.namespace is None or self._np_allows(src, dst, "Egress", protocol, port)))


def _int(value, default: int) -> int:
    return int(value) if value is not None else default


def from_rendered(r, default_groups: dict[str, list[Rule]] = None) -> Network:
    """The rules and policies a rendered stack declares (ids as the mocks give them: `<name>-id`)."""
    net = Network()
    for group, rules in (default_groups or {}).items():
        for rule in rules:
            net.add("egress" if rule.protocol == "egress" else "ingress", group, rule)
    for sg in r.of_type("aws:ec2/securityGroup:SecurityGroup"):
        gid = f"{sg.name}-id"
        for table in ("ingress", "egress"):
            for x in sg.inputs.get(table) or []:
                net.add(table, gid, Rule(str(x.get("protocol")), _int(x.get("fromPort"), 0), _int(x.get("toPort"), 65535),
                                         tuple(x.get("cidrBlocks") or ()), tuple(x.get("securityGroups") or ())))
    for kind, table in (("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "ingress"),
                        ("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "egress")):
        for x in r.of_type(kind):
            i = x.inputs
            net.add(table, i["securityGroupId"], Rule(
                str(i["ipProtocol"]), _int(i.get("fromPort"), 0), _int(i.get("toPort"), 65535),
                tuple(c for c in [i.get("cidrIpv4")] if c), tuple(g for g in [i.get("referencedSecurityGroupId")] if g)))
    for x in r.of_type("aws:ec2/securityGroupRule:SecurityGroupRule"):
        i = x.inputs
        net.add(i["type"], i["securityGroupId"], Rule(str(i["protocol"]), _int(i.get("fromPort"), 0),
                                                      _int(i.get("toPort"), 65535), tuple(i.get("cidrBlocks") or ()),
                                                      tuple(g for g in [i.get("sourceSecurityGroupId")] if g)))
    net.policies = [{"metadata": p.inputs["metadata"], "spec": p.inputs["spec"]}
                    for p in r.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")]
    net.namespaces = {n.inputs["metadata"]["name"]: {"kubernetes.io/metadata.name": n.inputs["metadata"]["name"],
                                                     **(n.inputs["metadata"].get("labels") or {})}
                      for n in r.of_type("kubernetes:core/v1:Namespace")}
    net.namespaces.setdefault("kube-system", {"kubernetes.io/metadata.name": "kube-system"})
    return net
