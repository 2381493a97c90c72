"""Where the CPU goes under load: CPU time per request of every process in a head's session (/proc), and of
wrk itself (getrusage of this process' children), so the README can say which process costs what."""
from __future__ import annotations

import os
import resource

from rayserve_pulumi.node_agent import procs

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def label(pid: int) -> str | None:
    """A process' name: Ray's `ray::<Actor>` title; for Python, its script or module (`dashboard.py`,
    `ray.util.client.server`, `python -c (multiprocessing.forkserver)`); else the executable's base name.
    None when the process is gone."""
    argv = procs.argv(pid)
    if argv is None:
        return None
    argv = [a for a in argv if a]
    first = argv[0].strip() if argv else ""
    if first.startswith("ray::"):
        return first.split(".")[0]  # ray::ServeController.listen_for_change -> ray::ServeController
    if first.startswith("ray-dashboard-"):
        return first.split(" ")[0]  # a dashboard module's process title
    name = os.path.basename(first.split()[0]) if first else "?"
    if name.startswith("python"):
        rest = iter(argv[1:])
        for arg in rest:
            if arg == "-m":
                return next(rest, name)
            if arg == "-c":  # e.g. the dashboard's `from multiprocessing.forkserver import main; ...`
                words = next(rest, "").split()
                return f"python -c ({words[1]})" if len(words) > 1 and words[0] in ("from", "import") else "python -c"
            if not arg.startswith("-"):
                return os.path.basename(arg)
    return name


def session_ms(sid: int) -> dict[int, tuple[float, str]]:
    """pid -> (user + system CPU ms so far, label) for every live process of session `sid`."""
    out = {}
    for pid in procs.members(sid):
        fields, name = procs.stat_fields(pid), label(pid)  # utime, stime: proc(5)'s fields 14 and 15
        if fields is None or name is None:
            continue  # exited meanwhile
        out[pid] = ((int(fields[11]) + int(fields[12])) * TICK_MS, name)
    return out


def children_ms() -> float:
    """CPU ms used so far by this process' finished children (wrk runs as one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def totals(sample: dict[int, tuple[float, str]], group=lambda label: label) -> dict[str, float]:
    """CPU seconds by label (or by `group(label)`), largest first, from one `session_ms` sample."""
    out: dict[str, float] = {}
    for ms, label in sample.values():
        out[group(label)] = out.get(group(label), 0.0) + ms / 1000
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def per_request(before: dict, after: dict, requests: int, top: int = 6) -> dict[str, float]:
    """CPU ms per request by label (the `top` largest, the rest summed as `other`) between two samples."""
    ranked = list(totals({pid: (ms - before.get(pid, (ms, label))[0], label)
                          for pid, (ms, label) in after.items()}).items())
    out = {label: round(seconds * 1000 / requests, 3) for label, seconds in ranked[:top]}
    out["other"] = round(sum(seconds for _, seconds in ranked[top:]) * 1000 / requests, 3)
    return out
