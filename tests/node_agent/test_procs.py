"""Process handling without Ray: a session per start, stopped through its PID file and only it; secrets
kept off error messages; secret files 0600, never through a symlink, never another user's."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from rayserve_pulumi.node_agent import procs, ray_ops

TREE = [sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '60']); "
        "subprocess.Popen(['sleep', '60'], start_new_session=False, process_group=0); time.sleep(60)"]


def test_stop_ends_every_process_of_the_session_even_in_other_groups(tmp_path):
    pid_file = tmp_path / "tree.pid"
    procs.spawn(TREE, pid_file, wait=False)
    sid = procs.read(pid_file)["sid"]
    deadline = time.monotonic() + 10

    def tree_up() -> bool:  # three processes, the child's setpgid done (it runs after the fork)
        members = procs.members(sid)
        return len(members) == 3 and len({os.getpgid(p) for p in members}) == 2

    while not tree_up() and time.monotonic() < deadline:
        time.sleep(0.05)
    members = procs.members(sid)
    assert len(members) == 3
    assert len({os.getpgid(p) for p in members}) == 2  # one child in a process group of its own, as Ray's workers
    assert procs.stop(pid_file, grace_s=2) is True
    assert procs.members(sid) == [] and not pid_file.exists()
    assert procs.stop(pid_file) is False  # nothing recorded: nothing to stop


def test_stopping_one_session_leaves_another_alone(tmp_path):
    mine, theirs = tmp_path / "mine.pid", tmp_path / "theirs.pid"
    procs.spawn([sys.executable, "-c", "import time; time.sleep(60)"], mine, wait=False)
    procs.spawn([sys.executable, "-c", "import time; time.sleep(60)"], theirs, wait=False)
    try:
        procs.stop(mine, grace_s=1)
        assert procs.running(theirs) and not procs.running(mine)
    finally:
        procs.stop(theirs, grace_s=1)


def test_a_sessions_commands_leave_out_a_process_gone_before_it_was_read(tmp_path, monkeypatch):
    """A CI run failed reading /proc/<pid>/cmdline of a session member (one of Ray's short-lived processes)
    that exited between the listing and the read."""
    pid_file = tmp_path / "one.pid"
    procs.spawn([sys.executable, "-c", "import time; time.sleep(60)", "an argument"], pid_file, wait=False)
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its /proc entry is gone
    try:
        sid = procs.read(pid_file)["sid"]
        live = procs.members(sid)
        monkeypatch.setattr(procs, "members", lambda session: [*live, gone.pid] if session == sid else [])
        assert procs.argv(gone.pid) is None
        assert procs.commands(sid) == {live[0]: [sys.executable, "-c", "import time; time.sleep(60)", "an argument"]}
    finally:
        procs.stop(pid_file, grace_s=1)


def test_a_stale_pid_file_names_nobody(tmp_path):
    pid_file = tmp_path / "stale.pid"
    procs.spawn([sys.executable, "-c", "import time; time.sleep(60)"], pid_file, wait=False)
    entry = json.loads(pid_file.read_text())
    try:
        procs.write_private(pid_file, json.dumps({**entry, "leader_start": entry["leader_start"] + 1}))
        assert procs.read(pid_file) is None  # the PID now "belongs to another process"
        procs.write_private(pid_file, json.dumps({**entry, "boot_id": "another-boot"}))
        assert procs.read(pid_file) is None
        assert procs.stop(pid_file) is False and os.getsid(entry["sid"]) == entry["sid"]  # left running
    finally:
        procs.write_private(pid_file, json.dumps(entry))
        procs.stop(pid_file, grace_s=1)


def test_stop_all_stops_what_pid_files_under_a_folder_record(tmp_path):
    for name in ("a", "b"):
        procs.spawn([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / name / "x.pid", wait=False)
    stopped = procs.stop_all(tmp_path, grace_s=1)
    assert sorted(stopped) == sorted(str(tmp_path / n / "x.pid") for n in ("a", "b"))


def test_a_failed_start_names_the_program_and_redacts_secrets(tmp_path):
    secret = "s3cr3t-value"
    with pytest.raises(RuntimeError) as exc:
        procs.spawn([sys.executable, "-c", "import sys; sys.stderr.write('[W 1] rpc_client.h: retrying\\n\\n"
                     f"bad --redis-password={secret} token: abc\\n'); sys.exit(3)", "--redis-password", secret],
                    tmp_path / "x.pid", secrets=[secret])
    message = str(exc.value)
    assert message.startswith(f"{os.path.basename(sys.executable)} -c failed (3): bad ")  # one line: the last
    assert "\n" not in message and "rpc_client" not in message
    assert secret not in message and "abc" not in message and "--redis-password=***" in message


def test_secret_files_are_0600_and_never_followed_through_a_symlink(tmp_path, capsys):
    path = tmp_path / "token"
    ray_ops.write_secret(str(path), "t0ken")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and ray_ops.read_secret(str(path)) == "t0ken"
    os.chmod(path, 0o644)
    assert ray_ops.ensure_secret(str(path)) == "t0ken"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "was mode 644; narrowed to 600" in capsys.readouterr().err
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(OSError):
        ray_ops.read_secret(str(link))
    with pytest.raises(OSError):
        ray_ops.write_secret(str(link), "x")
    assert ray_ops.read_secret(str(path)) == "t0ken"  # the target was not written through the link


def test_a_secret_created_by_another_process_meanwhile_is_the_one_kept_and_read(tmp_path, monkeypatch):
    """Two stacks' `up` on one machine create Ray's token at once: the one that lands first stays, and the
    other reads it (it never overwrites a token a running head already uses)."""
    path = tmp_path / "ray" / "auth_token"
    real = ray_ops.write_secret

    def racing(target, value):
        if not path.exists():  # the other process creates it between this one's check and its write
            real(str(path), "theirs")
        real(target, value)

    monkeypatch.setattr(ray_ops, "write_secret", racing)
    assert ray_ops.ensure_secret(str(path)) == "theirs" and path.read_text() == "theirs"
    assert sorted(p.name for p in path.parent.iterdir()) == ["auth_token"]  # no draft left behind


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another uid needs root")
def test_another_users_secret_is_refused_and_the_container_copy_is_the_ray_users(tmp_path):
    import argparse

    from rayserve_pulumi.node_agent import bootstrap

    path = tmp_path / "foreign"
    ray_ops.write_secret(str(path), "x")
    os.chown(path, 12345, 12345)
    with pytest.raises(PermissionError, match="belongs to uid 12345"):
        ray_ops.read_secret(str(path))
    ray_ops.write_secret(str(tmp_path / "auth_token"), "tok")
    copy = bootstrap.container_token(argparse.Namespace(state_dir=str(tmp_path)), str(tmp_path / "auth_token"))
    st = os.stat(copy)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (bootstrap.RAY_CONTAINER_UID, 0o600)
