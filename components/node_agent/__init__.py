"""The node agent shipped onto VMs in user data: standard library only (with `rayserve_pulumi.constants`).

`ray_ops` holds the Ray and Serve REST operations (also used by the local platform); `bootstrap` is
the command line a VM runs: `python3 -m rayserve_pulumi.node_agent head|worker|sync|stop`.
"""
