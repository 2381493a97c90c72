"""Safe rollouts: what a change will do, and the gate that decides, step by step, whether a new version keeps
taking traffic.

- `plan`  for each change between two stacks: in place, a replica roll, a new head or cluster, or an
          incremental upgrade, and the peak extra replicas or pods (`rayserve render --since`)
- `gate`  proceed, wait or roll back, from what the new and the previous version served
- `stepped`  a gated rollout on a running Serve (local, the VM agent): side by side, traffic in steps
- `ingress_hold`, `ingress_hold_remote`  under Serve's HAProxy ingress, an application whose route changes held
          off HAProxy meanwhile (this host's through its admin socket, other nodes' through a Ray actor there)
- `kuberay_gate`  the gate of a KubeRay incremental upgrade, run in the cluster (kuberay.rollout_gate)
"""

__all__ = []
