"""Transports: framing of batched commands, and the SSH transport against a real sshd."""

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from inventory.errors import HostKeyError, TransportError
from inventory.transport import LocalTransport, SharedLogins, SSHTransport, batch_script, parse_frames
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
def test_a_login_sends_its_packets_without_waiting_for_acks(sshd: sshd_mod.SSHServer) -> None:
    """TCP_NODELAY on the login's socket: each command's small packets are not held for the host's
    delayed ACK (measured: 130 ms a command on loopback without it, 84 ms with it)."""
    import socket

    with ssh(sshd) as transport:
        transport.run(["true"])
        connection = transport._connection
        assert connection is not None
        sock = connection.client.get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


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


def shared_ssh(server: sshd_mod.SSHServer, logins: SharedLogins, *, key: Path | None = None,
               max_sessions: int = 10, port: int | None = None) -> SSHTransport:
    return SSHTransport(host="127.0.0.1", port=port or server.port, user=server.user,
                        key_file=key or server.client_key, known_hosts=server.known_hosts, connect_timeout=5,
                        max_sessions=max_sessions, shared=logins)


def run_together(transports: list[SSHTransport], argv: list[str]) -> list[str]:
    """Every transport runs ``argv`` at the same time; their outputs."""
    with ThreadPoolExecutor(len(transports)) as pool:
        return [r.stdout for r in pool.map(lambda t: t.run(argv), transports)]


@pytest.mark.integration
def test_sites_of_one_host_user_and_key_share_logins(tmp_path: Path) -> None:
    """Twelve sites at once, five to a login (max_sessions 10): three logins, and each site's own
    commands ran on the host; a site with another key logs in on its own; the last one out closes."""
    server = sshd_mod.start(tmp_path / "sshd")
    other_key = tmp_path / "other"
    with (tmp_path / "sshd" / "authorized_keys").open("a") as keys:
        keys.write(sshd_mod.keygen(other_key) + "\n")
    marks = tmp_path / "marks"
    marks.mkdir()
    try:
        logins = SharedLogins()
        sites = [shared_ssh(server, logins) for _ in range(12)]
        stranger = shared_ssh(server, logins, key=other_key)
        gate = tmp_path / "go"
        wait_then_mark = ["sh", "-c", f'while [ ! -e "{gate}" ]; do sleep 0.05; done; mktemp -p "{marks}"']
        with ThreadPoolExecutor(13) as pool:  # all thirteen hold their login until the gate opens
            running = [pool.submit(t.run, wait_then_mark) for t in [*sites, stranger]]
            deadline = time.monotonic() + 20
            while logins.open_logins() < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            gate.touch()
            results = [f.result() for f in running]
        assert all(r.exit_code == 0 for r in results)
        assert len(list(marks.iterdir())) == 13 and len({r.stdout for r in results}) == 13
        assert server.logins() == 4 and sum(t.logins for t in sites) == 3 and stranger.logins == 1
        assert logins.open_logins() == 4
        for transport in [*sites, stranger]:
            transport.close()
        assert logins.open_logins() == 0
        assert not any(t._connection for t in sites)
        # with max_sessions 2 (a login per site) the same twelve log in twelve times
        alone = [shared_ssh(server, logins, max_sessions=2) for _ in range(12)]
        assert run_together(alone, ["echo", "ok"]) == ["ok\n"] * 12
        assert server.logins() == 16
        for transport in alone:
            transport.close()
    finally:
        server.stop()


@pytest.mark.integration
def test_a_host_refusing_a_channel_gets_a_login_per_site_beyond_it(tmp_path: Path) -> None:
    """The host allows two sessions on a connection, the config says ten: the sites that do not fit
    log in on their own, and every command still runs."""
    server = sshd_mod.start(tmp_path / "sshd", max_sessions=2)
    try:
        logins = SharedLogins()
        sites = [shared_ssh(server, logins) for _ in range(4)]
        for transport in sites:  # all four take a seat on one login first
            transport._connect()
        assert server.logins() == 1
        assert run_together(sites, ["sh", "-c", "sleep 1; echo ok"]) == ["ok\n"] * 4
        assert server.logins() == 3  # the two refused a channel logged in alone
        assert sum(t.logins for t in sites) == 3
        late = shared_ssh(server, logins)
        assert late.run(["echo", "late"]).stdout == "late\n"
        assert server.logins() == 4  # the full login takes no more sites
        for transport in [*sites, late]:
            transport.close()
        assert logins.open_logins() == 0
    finally:
        server.stop()


@pytest.mark.integration
def test_a_dead_shared_login_is_replaced_and_an_abort_cuts_it(sshd: sshd_mod.SSHServer) -> None:
    logins = SharedLogins()
    first, second = shared_ssh(sshd, logins), shared_ssh(sshd, logins)
    before = sshd.logins()
    assert first.run(["echo", "one"]).stdout == "one\n"
    assert first._connection is not None
    transport = first._connection.client.get_transport()
    assert transport is not None
    transport.close()  # the connection drops
    assert second.run(["echo", "two"]).stdout == "two\n"
    assert sshd.logins() - before == 2  # the dead one was not handed out
    with pytest.raises(TransportError, match="lost"):
        first.run(["true"])
    assert first.run(["echo", "again"]).stdout == "again\n"  # it takes a seat on the live one
    assert sshd.logins() - before == 2

    sleeper = ThreadPoolExecutor(1).submit(first.run, ["sleep", "30"])
    time.sleep(0.5)
    started = time.monotonic()
    second.abort()  # a forced stop cuts the login, and so the other site's command on it
    with pytest.raises(TransportError, match="lost"):
        sleeper.result(timeout=10)
    assert time.monotonic() - started < 5
    assert logins.open_logins() == 0
    with pytest.raises(TransportError, match="stopping"):
        second.run(["true"])
    first.close()


@pytest.mark.integration
def test_sites_waiting_for_a_login_share_its_failure(tmp_path: Path) -> None:
    """A host that accepts connections and never answers: five sites waiting for one login are one
    connection attempt, and each gets its error after one connect timeout, not five."""
    import socket

    server = sshd_mod.start(tmp_path / "sshd")  # only for its key files; the port is a silent listener
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        logins = SharedLogins()
        sites = [SSHTransport(host="127.0.0.1", port=listener.getsockname()[1], user=server.user,
                              key_file=server.client_key, known_hosts=server.known_hosts, connect_timeout=1,
                              shared=logins) for _ in range(5)]
        started = time.monotonic()
        with ThreadPoolExecutor(5) as pool:
            errors = [f.exception() for f in [pool.submit(t.run, ["true"]) for t in sites]]
        assert all(isinstance(e, TransportError) for e in errors), errors
        assert time.monotonic() - started < 4
        assert len(accepted) == 1 and logins.open_logins() == 0
    finally:
        listener.close()
        for sock in accepted:
            sock.close()
        server.stop()


STRESS_SECONDS = float(os.environ.get("WPFLEET_STRESS_SECONDS", "15"))


@pytest.mark.integration
def test_many_sites_on_one_login_under_load_never_break_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five sites on one shared login run quick commands (the kind whose channel the host closes at
    once), some of them given input they fail before reading, for a long while, with the CPU busy elsewhere: sshd's own log shows no dropped login and no
    message about a channel it had already freed — the EOF/CLOSE race of two threads is gone.

    The race is made likely, as a loaded machine makes it: an EOF a site's thread sends waits 0.3 s
    between paramiko building it and putting it on the wire, the window in which paramiko's own
    thread may answer the host's CLOSE first (then sshd drops the whole login)."""
    import paramiko

    original = paramiko.Transport._send_user_message

    def slow_eof(transport: paramiko.Transport, message: paramiko.Message) -> None:
        if message.asbytes()[:1] == bytes([paramiko.common.MSG_CHANNEL_EOF]) \
                and threading.current_thread() is not transport:
            time.sleep(0.3)
        original(transport, message)

    monkeypatch.setattr(paramiko.Transport, "_send_user_message", slow_eof)
    server = sshd_mod.start(tmp_path / "sshd")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        logins = SharedLogins()
        sites = [shared_ssh(server, logins) for _ in range(5)]
        deadline = time.monotonic() + STRESS_SECONDS
        commands = [["true"], ["test", "-e", "/"], ["echo", "x"], ["sh", "-c", "exit 3"]]
        missing = str(tmp_path / "no-such-folder" / "file")

        def hammer(site: SSHTransport) -> int:
            done = 0
            while time.monotonic() < deadline:
                if done % 5 == 4:  # input for a command that fails before reading it (a write into a missing folder)
                    failed = site.run(["sh", "-c", 'cat > "$1"', "sh", missing], stdin=b"x" * 65536)
                    assert failed.exit_code == 2 and "Directory nonexistent" in failed.stderr
                else:
                    result = site.run(commands[done % 5])
                    assert result.exit_code == (3 if done % 5 == 3 else 0)
                done += 1
            return done

        with ThreadPoolExecutor(len(sites)) as pool:
            counts = [f.result() for f in [pool.submit(hammer, site) for site in sites]]
        for site in sites:
            site.close()
    finally:
        for hog in hogs:
            hog.kill()
        server.stop()
    log = server.log.read_text(errors="replace")
    assert sum(counts) > 4 * STRESS_SECONDS  # it did work the login hard
    assert server.logins() == 1
    assert "nonexistent channel" not in log and "bad id" not in log and "Disconnecting" not in log, log[-2000:]
