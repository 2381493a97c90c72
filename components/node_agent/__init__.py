"""The node agent shipped onto VMs in user data: standard library only (with `rayserve_pulumi.constants` and the
stdlib-only `rayserve_pulumi.observability` modules).

`ray_ops` holds the Ray and Serve REST operations (also used by the local platform); `procs` starts processes
in sessions of their own recorded in PID files and stops exactly those; `bootstrap` is the command line a
VM runs: `python3 -m rayserve_pulumi.node_agent head|worker|sync|stop`.
"""

__all__ = []
