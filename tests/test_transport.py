"""Transports: framing of batched commands, and the SSH transport against a real sshd."""

from pathlib import Path

import pytest

from inventory.errors import HostKeyError, TransportError
from inventory.transport import LocalTransport, SSHTransport, batch_script, parse_frames
from tests import sshd as sshd_mod

TRICKY = [
    ["printf", "%s", "no newline"],
    ["printf", "wpfleet-frame 0 99 99\\n"],
    ["sh", "-c", "echo 'héllo ✓'; echo 'Warning: x' >&2; exit 3"],
    ["sh", "-c", "exit 255"],
    ["printf", ""],
    ["printf", "\\nwpfleet-body\\nwpfleet-codes\\n0 9\\n"],  # our own markers, printed by a command
]


def ssh(server: sshd_mod.SSHServer, known_hosts: Path | None = None) -> SSHTransport:
    return SSHTransport(host="127.0.0.1", port=server.port, user=server.user, key_file=server.client_key,
                        known_hosts=known_hosts or server.known_hosts, connect_timeout=5)


def test_frames_survive_a_cut_off_tail() -> None:
    data = (b"wpfleet-head\n 3 /tmp/x/0.o\n 0 /tmp/x/0.e\n 10 /tmp/x/1.o\n 0 /tmp/x/1.e\n 13 total\n"
            b"wpfleet-codes\n0 0\n1 2\nwpfleet-body\nabcshort")
    results = parse_frames(["a", "b"], data)
    assert [(r.exit_code, r.stdout) for r in results] == [(0, "abc")]


def test_groups_run_side_by_side_and_report_in_order(tmp_path: Path) -> None:
    import subprocess
    import time

    from inventory import safety
    from inventory.transport import parallel_script
    groups = [[safety.join(["sh", "-c", "sleep 1; echo a"]), safety.join(["sh", "-c", "echo b >&2; exit 4"])],
              [safety.join(["sh", "-c", "sleep 1; echo c"])], [safety.join(["printf", "%s", "d"])]]
    started = time.monotonic()
    done = subprocess.run(["sh", "-c", parallel_script(groups)], capture_output=True, check=True)
    assert time.monotonic() - started < 1.8  # the two one-second sleeps ran at the same time
    results = parse_frames([line for group in groups for line in group], done.stdout)
    assert [(r.exit_code, r.stdout, r.stderr) for r in results] == [
        (0, "a\n", ""), (4, "", "b\n"), (0, "c\n", ""), (0, "d", "")]


def test_batch_script_locally_matches_one_by_one(tmp_path: Path) -> None:
    local = LocalTransport()
    one_by_one = [local.run(argv) for argv in TRICKY]
    import subprocess

    from inventory import safety
    lines = [safety.join(a) for a in TRICKY]
    done = subprocess.run(["sh", "-c", batch_script(lines)], capture_output=True, check=True)
    framed = parse_frames(lines, done.stdout)
    assert [(r.exit_code, r.stdout, r.stderr) for r in framed] == [(r.exit_code, r.stdout, r.stderr) for r in one_by_one]


@pytest.mark.integration
def test_ssh_batch_is_one_login_and_exact(sshd: sshd_mod.SSHServer) -> None:
    before = sshd.logins()
    with ssh(sshd) as transport:
        many = transport.run_many(TRICKY)
        single = [transport.run(argv) for argv in TRICKY]
        assert transport.logins == 1 and transport.commands_run == 2 * len(TRICKY)
    assert sshd.logins() - before == 1
    assert [(r.exit_code, r.stdout, r.stderr) for r in many] == [(r.exit_code, r.stdout, r.stderr) for r in single]
    assert many[2].stdout == "héllo ✓\n" and many[2].exit_code == 3 and many[3].exit_code == 255


@pytest.mark.integration
def test_changed_and_unknown_host_keys_are_refused(sshd: sshd_mod.SSHServer, tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    changed.write_text(sshd.known_hosts_line(sshd_mod.keygen(tmp_path / "other")))
    empty = tmp_path / "empty"
    empty.write_text("")
    before = empty.read_text()
    with pytest.raises(HostKeyError, match="changed"):
        ssh(sshd, changed).run(["true"])
    with pytest.raises(HostKeyError, match="unknown"):
        ssh(sshd, empty).run(["true"])
    with pytest.raises(HostKeyError, match="does not exist"):
        ssh(sshd, tmp_path / "missing").run(["true"])
    assert empty.read_text() == before  # never learnt


@pytest.mark.integration
def test_command_timeout_and_lost_connection(sshd: sshd_mod.SSHServer) -> None:
    transport = ssh(sshd)
    with pytest.raises(TransportError, match="timed out"):
        transport.run(["sleep", "5"], timeout=0.5)
    with pytest.raises(TransportError):
        transport.run_many([["true"], ["sh", "-c", "kill -9 $PPID"], ["true"]])
    assert transport.run(["echo", "back"]).stdout == "back\n"  # a new login after the loss
    transport.close()


def test_closing_a_local_transport_terminates_its_running_commands() -> None:
    import threading
    import time

    local = LocalTransport()
    results: list[BaseException] = []

    def run() -> None:
        try:
            local.run(["sleep", "30"])
        except TransportError as exc:
            results.append(exc)

    worker = threading.Thread(target=run)
    started = time.monotonic()
    worker.start()
    while not local._running and time.monotonic() - started < 5:
        time.sleep(0.01)
    local.close()
    worker.join(10)
    assert results and "forced stop" in str(results[0]) and time.monotonic() - started < 5
    assert local.run(["echo", "still usable"]).stdout == "still usable\n"


@pytest.mark.integration
def test_a_waiting_channel_sleeps_instead_of_polling(sshd: sshd_mod.SSHServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a command runs without output the reader sleeps on the channel's event pipe: a handful
    of looks in a second, where the old 5 ms loop looked about 200 times."""
    import paramiko

    looks = []
    original = paramiko.Channel.recv_ready

    def counted(channel: paramiko.Channel) -> bool:
        looks.append(1)
        return bool(original(channel))

    monkeypatch.setattr(paramiko.Channel, "recv_ready", counted)
    with ssh(sshd) as transport:
        result = transport.run(["sh", "-c", "sleep 1; echo done"])
    assert result.stdout == "done\n" and result.exit_code == 0
    assert len(looks) < 20
