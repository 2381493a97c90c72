"""Processes this package starts, each in a session of its own named by a PID file. Standard library only.

Ray, Redis and the rest are started in a new session (`start_new_session`). Ray puts its workers in
process groups of their own (Serve's HAProxy among them), but everything it forks stays in the
session, so the session is the unit: the PID file records its id (and the boot and start time of its
leader, so a stale file never names somebody else's processes). Stopping is SIGTERM to every process of
that session, then SIGKILL after a grace period: never a name pattern, never another run's processes.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

__all__ = [
    "PID_SUFFIX", "SECRET_FLAG", "redact", "program", "stat_fields", "members", "argv", "commands", "signal_new",
    "write_private",
    "record", "spawn", "read", "running", "stop", "stop_all",
]

PID_SUFFIX = ".pid"
SECRET_FLAG = re.compile(r"(?i)((?:password|passwd|token|secret|requirepass)[\w-]*[=:\s]+)(\S+)")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with known secret values and `--*password*=value`-like pairs masked."""
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return SECRET_FLAG.sub(lambda m: m.group(1) + "***", text)


def program(args: list[str]) -> str:
    """How errors name a command: its program and first argument, never the whole (secret-bearing) line."""
    return " ".join([os.path.basename(args[0]), *args[1:2]])


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def stat_fields(pid: int) -> Optional[list[str]]:
    """The fields of /proc/<pid>/stat after "pid (comm) " (proc(5)'s field 3 is [0]), or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _stat(pid: int) -> Optional[tuple[str, int, int]]:
    """(state, session id, start time in clock ticks) of a process, or None when it is gone."""
    fields = stat_fields(pid)
    return (fields[0], int(fields[3]), int(fields[19])) if fields else None


def members(sid: int) -> list[int]:
    """Live (not zombie) processes of a session."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) and st[1] == sid and st[0] != "Z":
            out.append(int(entry))
    return out


def argv(pid: int) -> Optional[list[str]]:
    """A process's command line, or None when it is gone (it can exit between being listed and being read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    parts = raw.split(b"\0")
    if parts[-1] == b"":  # the NUL that ends the last argument (a process that retitled itself may have none)
        parts.pop()
    return [part.decode(errors="replace") for part in parts]


def commands(sid: int) -> dict[int, list[str]]:
    """The command line of each live process of a session, leaving out any that exits while they are read."""
    return {pid: args for pid in members(sid) if (args := argv(pid)) is not None}


def signal_new(sid: int, sig: int, done: set[int]) -> None:
    """Send `sig` to every process of the session not in `done` (then add it there)."""
    for pid in members(sid):
        if pid not in done:
            done.add(pid)
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a file only its owner can read, never following a symlink at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def record(pid_file: Path, pid: int, command: str) -> None:
    st = _stat(pid)
    write_private(pid_file, json.dumps({"sid": pid, "leader_start": st[2] if st else None,
                                        "boot_id": _boot_id(), "command": command}))


def spawn(args: list[str], pid_file: Path, *, env: Optional[dict] = None, log_file: Optional[Path] = None,
          wait: bool = True, timeout: float = 180, secrets: Iterable[str] = (), name: Optional[str] = None) -> subprocess.Popen:
    """Start `args` as the leader of a new session recorded in `pid_file`. With `wait`, wait for the leader
    to exit (its children stay in the session) and raise on failure with the last line of its stderr,
    redacted (one line; a program's cause comes last); the error names the program, never the full command
    line."""
    pid_file = Path(pid_file)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(args, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=out if not wait else subprocess.PIPE, stderr=out if not wait else subprocess.PIPE)
    finally:
        if log_file:
            out.close()
    name = name or program(args)
    record(pid_file, proc.pid, name)
    if wait:
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(pid_file, grace_s=2)
            raise RuntimeError(f"{name} did not finish in {timeout:.0f} s") from None
        if proc.returncode != 0:
            stop(pid_file, grace_s=2)
            lines = [line.strip() for line in err.decode(errors="replace").splitlines() if line.strip()]
            cause = redact(lines[-1][-2000:], secrets) if lines else "no output"  # the last line says why
            raise RuntimeError(f"{name} failed ({proc.returncode}): {cause}")
    return proc


def read(pid_file: Path) -> Optional[dict]:
    """The recorded session, or None when the file is missing, unreadable, or stale (another boot, or the
    leader's PID now belongs to a different process, which means the session is gone)."""
    try:
        fd = os.open(pid_file, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as f:
            entry = json.load(f)
        sid = int(entry["sid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if entry.get("boot_id") and entry["boot_id"] != _boot_id():
        return None
    leader = _stat(sid)
    if leader and entry.get("leader_start") is not None and leader[2] != entry["leader_start"]:
        return None
    return {**entry, "sid": sid}


def running(pid_file: Path) -> bool:
    entry = read(pid_file)
    return bool(entry and members(entry["sid"]))


def stop(pid_file: Path, grace_s: float = 5) -> bool:
    """SIGTERM every process of the recorded session, SIGKILL whatever is left after `grace_s`, remove the
    file. True when there was a live session to stop."""
    pid_file = Path(pid_file)
    entry = read(pid_file)
    found = False
    if entry:
        sid = entry["sid"]
        found = bool(members(sid))
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
            deadline, done = time.monotonic() + wait_s, set()
            while members(sid) and time.monotonic() < deadline:
                signal_new(sid, sig, done)  # each round: a process may fork while the session winds down
                time.sleep(0.1)
            if not members(sid):
                break
    pid_file.unlink(missing_ok=True)
    return found


def stop_all(root: Path, grace_s: float = 5) -> list[str]:
    """Stop every session recorded by a PID file under `root` (the test runner's cleanup)."""
    stopped = []
    for pid_file in sorted(Path(root).rglob(f"*{PID_SUFFIX}")):
        if not pid_file.is_symlink() and stop(pid_file, grace_s):
            stopped.append(str(pid_file))
    return stopped


if __name__ == "__main__":  # `python -m rayserve_pulumi.node_agent.procs stop-all DIR`
    if len(sys.argv) != 3 or sys.argv[1] != "stop-all":
        sys.exit("usage: python -m rayserve_pulumi.node_agent.procs stop-all DIR")
    for line in stop_all(Path(sys.argv[2])):
        print(f"stopped the processes of {line}")
