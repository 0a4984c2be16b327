"""The one seam through which every remote command runs.

``SSHTransport`` logs in once (key auth, host key checked against the site's known_hosts file,
never added) and runs every command of an operation over that one login; with ``SharedLogins``,
the sites of one host that log in as the same user share it. ``LocalTransport`` runs commands on
the agent's own host, for sites that live there. Neither retries a command.
"""

from __future__ import annotations

import contextlib
import hashlib
import select
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

import paramiko
from fabric import Config, Connection

from inventory import safety
from inventory.errors import HostKeyError, RemoteCommandError, TransportError

DEFAULT_COMMAND_TIMEOUT = 300.0
_IDLE_WAKE = 1.0  # at most this long asleep between looks at a channel with nothing to read


class ByteSink(Protocol):
    """Where a download goes: a file opened "wb", or anything that writes bytes."""

    def write(self, data: bytes, /) -> int: ...


class HashingSink:
    """Writes through to another sink while hashing (SHA-256) what passes."""

    def __init__(self, sink: ByteSink):
        self.sink = sink
        self.hash = hashlib.sha256()

    def write(self, data: bytes, /) -> int:
        self.hash.update(data)
        return int(self.sink.write(data))

    def hexdigest(self) -> str:
        return self.hash.hexdigest()


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


# $1 the folder; the rest the command. Its own session (setsid --wait: the caller still waits for it);
# "<pgid>.pid" holds the leader's start time, so a pid reused since is never taken for it.
_TRACKED = r'''
d=$1; shift
mkdir -p "$d" 2>/dev/null
exec setsid -w sh -c 'cut -d" " -f22 /proc/$$/stat > "$0/$$.pid" 2>/dev/null; "$@"; rc=$?; rm -f "$0/$$.pid"; exit $rc' "$d" "$@"
'''
# $1 the folder, $2 seconds of grace: every group still running gets SIGTERM, then SIGKILL after the
# grace; prints the groups it had to end. A group whose members are all zombies has ended.
END_RUNNING = r'''
d=$1; grace=$2
[ -d "$d" ] || exit 0
live() { ps -o stat= -g "$1" 2>/dev/null | grep -qv '^Z'; }
ended=""
for f in "$d"/*.pid; do
  [ -e "$f" ] || continue
  g=${f##*/}; g=${g%.pid}
  case $g in *[!0-9]*|"") rm -f "$f"; continue;; esac
  if [ -e "/proc/$g/stat" ] && [ "$(cut -d" " -f22 "/proc/$g/stat")" != "$(cat "$f")" ]; then rm -f "$f"; continue; fi
  if live "$g"; then kill -s TERM -- "-$g" 2>/dev/null; ended="$ended $g"; fi
done
i=0
while [ -n "$ended" ] && [ $i -lt $((grace * 10)) ]; do
  alive=""
  for g in $ended; do live "$g" && alive="$alive $g"; done
  [ -z "$alive" ] && break
  sleep 0.1; i=$((i + 1))
done
for g in $ended; do live "$g" && kill -s KILL -- "-$g" 2>/dev/null; done
for g in $ended; do rm -f "$d/$g.pid"; done
for f in "$d"/*.pid; do [ -e "$f" ] || continue; g=${f##*/}; live "${g%.pid}" || rm -f "$f"; done
echo $ended
'''


@dataclass(eq=False)
class Transport(ABC):
    """Runs argument lists on a site's host; counts what it did for the benchmarks."""

    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    commands_run: int = field(default=0, init=False)
    logins: int = field(default=0, init=False)
    aborted: bool = field(default=False, init=False)
    # a folder on the host: every command ``run`` starts goes into a session of its own, its process
    # group named there while it runs, so the agent can end it even after it let go (``end_running``)
    track: str | None = field(default=None, init=False)

    def run(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None,
        stdin: bytes | None = None, tracked: bool = True,
    ) -> CommandResult:
        """Run one command built from already validated arguments; never raises on exit codes.
        ``tracked``: with ``track`` set, the command can be ended by a later ``end_running``."""
        self._refuse_if_aborted()
        self.commands_run += 1
        full = self._with_env(argv, env)
        if tracked and self.track is not None:
            full = ["sh", "-c", _TRACKED, "sh", safety.remote_path(self.track), *full]
        return self._execute(full, timeout or self.command_timeout, stdin)

    def run_many(
        self, commands: Sequence[Sequence[str]], *, env: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> list[CommandResult]:
        """Run several commands in order, each whatever the previous one's exit code.

        A remote transport sends them in one go (one shell, one round trip); the results are
        exactly those of running them one by one.
        """
        self._refuse_if_aborted()
        full = [self._with_env(argv, env) for argv in commands]
        self.commands_run += len(full)
        return self._execute_many(full, timeout or self.command_timeout)

    def run_groups(
        self, groups: Sequence[Sequence[Sequence[str]]], *, env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> list[CommandResult]:
        """Run several groups of commands side by side, each group's commands in order; the results
        of every command, group after group. For reads that do not depend on each other (three
        WordPress bootstraps at once instead of one after another); one round trip on SSH."""
        self._refuse_if_aborted()
        full = [[self._with_env(argv, env) for argv in group] for group in groups]
        self.commands_run += sum(len(group) for group in full)
        return self._execute_groups(full, timeout or self.command_timeout)

    def _execute_groups(self, groups: list[list[list[str]]], timeout: float) -> list[CommandResult]:
        with ThreadPoolExecutor(max_workers=max(1, len(groups))) as pool:
            done = list(pool.map(lambda group: [self._execute(argv, timeout) for argv in group], groups))
        return [result for results in done for result in results]

    def download(self, path: str, sink: ByteSink, *, timeout: float | None = None) -> int:
        """Copy the host's file ``path`` into ``sink`` as it arrives (binary-safe, bounded memory);
        the number of bytes. A file that cannot be read is a ``RemoteCommandError``."""
        self._refuse_if_aborted()
        self.commands_run += 1
        return self._download(safety.remote_path(path), sink, timeout or self.command_timeout)

    @abstractmethod
    def _download(self, path: str, sink: ByteSink, timeout: float) -> int: ...

    @contextmanager
    def upload(self, path: str, *, timeout: float | None = None) -> Iterator[ByteSink]:
        """A sink whose bytes become the host's file ``path`` as they are written (bounded memory).

        The file is complete once the block ends without an error; a host that cannot write it is a
        ``RemoteCommandError``. With ``download`` of another host, a file goes from host to host
        through the agent, without the hosts reaching each other.
        """
        self._refuse_if_aborted()
        self.commands_run += 1
        with self._upload(safety.remote_path(path), timeout or self.command_timeout) as sink:
            yield sink

    @abstractmethod
    def _upload(self, path: str, timeout: float) -> contextlib.AbstractContextManager[ByteSink]: ...

    def _with_env(self, argv: Sequence[str], env: Mapping[str, str] | None) -> list[str]:
        env_words = [f"{safety.env_name(k)}={safety.word(v)}" for k, v in (env or {}).items()]
        return ["env", *env_words, *argv] if env_words else list(argv)

    @abstractmethod
    def _execute(self, argv: list[str], timeout: float, stdin: bytes | None = None) -> CommandResult: ...

    def _execute_many(self, commands: list[list[str]], timeout: float) -> list[CommandResult]:
        return [self._execute(argv, timeout) for argv in commands]

    def close(self) -> None:  # noqa: B027 - a transport without a connection has nothing to release
        """Release the connection, if any; the next command opens a new one."""

    def abort(self) -> None:
        """A forced stop: cut what runs now and refuse every later command (no reconnecting)."""
        self.aborted = True
        self.close()

    def _refuse_if_aborted(self) -> None:
        if self.aborted:
            raise TransportError("the agent is stopping at once: no more remote commands")

    def __enter__(self) -> Transport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(eq=False)
class LocalTransport(Transport):
    """Runs commands on the agent's own host, without a shell; ``close`` kills any still running."""

    _running: set[subprocess.Popen[bytes]] = field(default_factory=set, init=False, repr=False)
    _stopped: set[subprocess.Popen[bytes]] = field(default_factory=set, init=False, repr=False)

    def _execute(self, argv: list[str], timeout: float, stdin: bytes | None = None) -> CommandResult:
        command = safety.join(argv)
        try:
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise TransportError(f"cannot run {argv[0]}: {exc.strerror}") from exc
        self._running.add(process)
        try:
            out, err = process.communicate(stdin or b"", timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            process.communicate()
            raise TransportError(f"command timed out after {timeout:g}s: {command}") from exc
        finally:
            self._running.discard(process)
        if process in self._stopped:  # like a cut SSH connection: the caller must not act on it
            self._stopped.discard(process)
            raise TransportError(f"command stopped by a forced stop: {command}")
        return CommandResult(command, process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def _download(self, path: str, sink: ByteSink, timeout: float) -> int:
        try:
            with open(path, "rb") as source:
                return _copy(source.read, sink)
        except OSError as exc:
            raise RemoteCommandError(f"cannot read {path}: {exc.strerror}", command=f"read {path}", exit_code=1,
                                     stdout="", stderr=str(exc)) from exc

    @contextmanager
    def _upload(self, path: str, timeout: float) -> Iterator[ByteSink]:
        try:
            with open(path, "wb") as target:
                yield target
        except OSError as exc:
            raise RemoteCommandError(f"cannot write {path}: {exc.strerror}", command=f"write {path}", exit_code=1,
                                     stdout="", stderr=str(exc)) from exc

    def close(self) -> None:
        """Terminate commands still running; the transport stays usable unless aborted."""
        for process in list(self._running):
            self._stopped.add(process)
            process.terminate()
            try:
                process.wait(2)
            except subprocess.TimeoutExpired:
                process.kill()


@dataclass(eq=False)
class SSHTransport(Transport):
    """One SSH login, opened lazily, carrying all the commands of one operation; with ``shared``,
    a login shared with the other sites of the same host, user and key (each command on a channel
    of its own)."""

    host: str = ""
    port: int = 22
    user: str = ""
    key_file: Path = Path()
    known_hosts: Path = Path()
    connect_timeout: float = 15.0
    max_sessions: int = 10  # the host's sshd MaxSessions: channels one login may have open at once
    shared: SharedLogins | None = field(default=None, repr=False)
    _connection: Connection | None = field(default=None, init=False, repr=False)
    _borrowed: bool = field(default=False, init=False, repr=False)  # _connection belongs to ``shared``
    _connecting: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _releasing: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def login_key(self) -> tuple[str, int, str, str, str, float, int]:
        """What makes two sites' logins interchangeable."""
        return (self.host, self.port, self.user, str(self.key_file), str(self.known_hosts), self.connect_timeout,
                self.max_sessions)

    @property
    def sites_per_login(self) -> int:
        # a site may hold two channels at once: its commands and its lock's heartbeat
        return max(1, self.max_sessions // 2)

    def _connect(self) -> Connection:
        """The open login, or a new one; thread-safe (a lock's heartbeat shares the login)."""
        with self._connecting:
            self._refuse_if_aborted()
            if self._connection is not None:
                return self._connection
            if self.shared is not None:
                self._connection, self._borrowed = self.shared.acquire(self), True
            else:
                self._connection, self._borrowed = self._login(), False
            return self._connection

    def _login_alone(self) -> Connection:
        """Leave a shared login whose host refused one more channel (its MaxSessions is lower than
        configured) for a login of this transport's own."""
        with self._connecting:
            self._refuse_if_aborted()
            if self._connection is not None and self._borrowed:
                assert self.shared is not None
                self.shared.release(self._connection, full=True)
                self._connection = None
            if self._connection is None:
                self._connection, self._borrowed = self._login(), False
            return self._connection

    def _login(self) -> Connection:
        if not self.known_hosts.is_file():
            raise HostKeyError(f"known_hosts file {self.known_hosts} does not exist")
        connection = Connection(
            self.host, user=self.user, port=self.port, connect_timeout=self.connect_timeout,
            config=Config(overrides={"load_ssh_configs": False}),
            connect_kwargs={
                "key_filename": str(self.key_file), "look_for_keys": False, "allow_agent": False,
                "banner_timeout": self.connect_timeout, "auth_timeout": self.connect_timeout,
            },
        )
        # Fabric trusts any new host key by default; a fleet agent must not.
        connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        connection.client.load_host_keys(str(self.known_hosts))
        try:
            connection.open()
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(f"host key of {self.host}:{self.port} changed: refused") from exc
        except paramiko.SSHException as exc:
            if "known_hosts" in str(exc):
                raise HostKeyError(f"host key of {self.host}:{self.port} is unknown: refused") from exc
            raise TransportError(f"ssh to {self.user}@{self.host}:{self.port} failed: {exc}") from exc
        except (TimeoutError, OSError, EOFError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise TransportError(f"ssh to {self.host}:{self.port} failed: {reason}") from exc
        _no_delay(connection)
        self.logins += 1
        return connection

    def _execute(self, argv: list[str], timeout: float, stdin: bytes | None = None) -> CommandResult:
        command = safety.join(argv)
        code, out, err = self._exec(command, timeout, stdin)
        return CommandResult(command, code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def _execute_many(self, commands: list[list[str]], timeout: float) -> list[CommandResult]:
        return self._execute_groups([commands], timeout)

    def _execute_groups(self, groups: list[list[list[str]]], timeout: float) -> list[CommandResult]:
        lines = [[safety.join(argv) for argv in group] for group in groups]
        flat = [line for group in lines for line in group]
        code, out, err = self._exec(parallel_script(lines), timeout)
        results = parse_frames(flat, out)
        if len(results) < len(flat):
            self.close()
            reason = err.decode("utf-8", "replace").strip() or f"exit code {code}"
            raise TransportError(f"ssh batch on {self.host} ended after {len(results)} of {len(flat)} commands: {reason}")
        return results

    @contextmanager
    def _channel(self, command: str, doing: str = "", timeout: float | None = None) -> Iterator[paramiko.Channel]:
        """A fresh channel of the open login running ``command``; a broken connection (while the
        block runs too) is a ``TransportError`` and the login is dropped."""
        try:
            with self._open_session() as channel:
                if timeout is not None:
                    channel.settimeout(timeout)
                channel.exec_command(command)
                yield channel
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise TransportError(f"ssh connection to {self.host} lost{doing}: {exc or type(exc).__name__}") from exc

    def _open_session(self) -> paramiko.Channel:
        connection = self._connect()
        try:
            return _session(connection, self.connect_timeout)
        except paramiko.SSHException:
            # refused on a live shared login (the host's MaxSessions); paramiko keeps one refusal
            # for the whole connection, so a neighbour may have taken it: any failure counts here
            if not self._borrowed or not _alive(connection):
                raise
        return _session(self._login_alone(), self.connect_timeout)

    def _exec(self, command: str, timeout: float, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Run one shell command line on a fresh channel of the open login."""
        with self._channel(_reads_to_eof(command) if stdin else _NO_INPUT + command) as channel:
            if stdin:
                channel.sendall(stdin)
                _end_input(channel)
            return _drain(channel, timeout, command)

    def _download(self, path: str, sink: ByteSink, timeout: float) -> int:
        command = safety.join(["cat", "--", path])
        with self._channel(_NO_INPUT + command, f" while copying {path}", timeout) as channel:
            size = _copy(lambda n: channel.recv(n), sink)
            code = channel.recv_exit_status()
            error = channel.recv_stderr(65536).decode("utf-8", "replace")
        _succeeded(code, error, command, f"cannot read {path} on {self.host}")
        return size

    @contextmanager
    def _upload(self, path: str, timeout: float) -> Iterator[ByteSink]:
        command = _reads_to_eof(safety.join(["sh", "-c", 'cat > "$1"', "sh", path]))
        with self._channel(command, f" while writing {path}", timeout) as channel:
            yield _ChannelSink(channel)
            _end_input(channel)
            code = channel.recv_exit_status()
            error = channel.recv_stderr(65536).decode("utf-8", "replace")
        _succeeded(code, error, command, f"cannot write {path} on {self.host}")

    def close(self) -> None:
        self._let_go(cut=False)

    def abort(self) -> None:
        self.aborted = True
        self._let_go(cut=True)  # a shared login too: every site on it is being stopped

    def _let_go(self, *, cut: bool) -> None:
        with self._releasing:
            connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._borrowed and self.shared is not None:
            self.shared.release(connection, cut=cut)
        else:
            connection.close()


def _no_delay(connection: Connection) -> None:
    """Send each SSH packet at once (TCP_NODELAY). Every command is a few small packets each way
    (open the channel, exec, EOF, close); with Nagle's algorithm each waits for the host's delayed
    ACK — about 40 ms a command here on loopback, more on a real network."""
    transport = connection.client.get_transport()
    sock = transport.sock if transport is not None else None
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# A command that reads no input gets /dev/null as its stdin on the host, so the agent never has to
# send EOF for it. An EOF can race the host's CLOSE of a channel whose command already ended:
# paramiko sends them from two threads, and sshd drops the whole login — every site on a shared
# one — when an EOF names a channel it has freed ("ieof packet referred to nonexistent channel").
_NO_INPUT = "exec </dev/null; "


#
# A command that is given input could still end before reading it (a write into a missing folder, a
# full disk) and race the agent's EOF the same way. So such a command reads its input to the end
# before it exits, whatever it did: the host closes the channel only after the agent's EOF. EOF and
# close are one ordered step on the agent's side, for every command.
def _reads_to_eof(command: str) -> str:
    return f"{command}\n_wpfleet_rc=$?; cat >/dev/null; exit $_wpfleet_rc"


def _end_input(channel: paramiko.Channel) -> None:
    """EOF after the input: the command reads to it before it exits (``_reads_to_eof``), so its
    channel is still open here unless the connection itself was lost."""
    if not channel.closed:
        channel.shutdown_write()


def _session(connection: Connection, timeout: float) -> paramiko.Channel:
    transport = connection.client.get_transport()
    if transport is None or not transport.is_active():
        raise paramiko.SSHException("not connected")
    return transport.open_session(timeout=timeout)


def _alive(connection: Connection) -> bool:
    transport = connection.client.get_transport()
    return transport is not None and transport.is_active()


@dataclass(eq=False)
class _Login:
    key: tuple[object, ...]
    connection: Connection | None = None  # None while the login is being made
    holders: int = 1
    full: bool = False  # the host refused a channel: no more sites on this one
    made: threading.Event = field(default_factory=threading.Event)
    failure: TransportError | None = None


class SharedLogins:
    """SSH logins shared by the sites that log in to one host as the same user with the same key
    (what OpenSSH's ControlMaster does for a shell): a host running many sites is logged in to a
    few times per round, not once per site. Each site's commands run on channels of their own.

    At most ``sites_per_login`` sites share a login. A site finds a seat on an open login, or on one
    being made (and waits for it, sharing its failure: an unreachable host is not tried once per
    waiting site), or makes a new one. A login is closed when its last site lets go; a dead one is
    never handed out.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logins: dict[tuple[object, ...], list[_Login]] = {}
        self._held: dict[int, _Login] = {}  # id(connection) -> its login

    def open_logins(self) -> int:
        with self._lock:
            return len(self._held)

    def acquire(self, transport: SSHTransport) -> Connection:
        with self._lock:
            login = self._seat(transport)
            making = login is None
            if login is None:
                login = _Login(transport.login_key)
                self._logins.setdefault(login.key, []).append(login)
        if making:
            return self._make(login, transport)
        login.made.wait()
        if login.failure is not None:
            raise type(login.failure)(str(login.failure))
        assert login.connection is not None
        return login.connection

    def _seat(self, transport: SSHTransport) -> _Login | None:
        for login in self._logins.get(transport.login_key, []):
            usable = login.connection is None or _alive(login.connection)
            if usable and not login.full and login.holders < transport.sites_per_login:
                login.holders += 1
                return login
        return None

    def _make(self, login: _Login, transport: SSHTransport) -> Connection:
        try:
            connection = transport._login()
        except TransportError as exc:
            with self._lock:
                login.failure = exc
                self._drop(login)
            login.made.set()
            raise
        with self._lock:
            login.connection = connection
            self._held[id(connection)] = login
        login.made.set()
        return connection

    def release(self, connection: Connection, *, cut: bool = False, full: bool = False) -> None:
        """A site is done with ``connection``; ``cut`` closes it at once whoever else holds it (a
        forced stop), ``full`` marks it as taking no more sites."""
        with self._lock:
            login = self._held.get(id(connection))
            close = True  # already dropped (dead, or cut): only this holder's close is left
            if login is not None:
                login.holders -= 1
                login.full = login.full or full
                close = cut or login.holders <= 0
                if close or not _alive(connection):  # a dead one's other holders find out on their next command
                    self._drop(login)
        if close:
            connection.close()

    def _drop(self, login: _Login) -> None:
        siblings = self._logins.get(login.key, [])
        if login in siblings:
            siblings.remove(login)
        if not siblings:
            self._logins.pop(login.key, None)
        if login.connection is not None:
            self._held.pop(id(login.connection), None)


def _succeeded(code: int, error: str, command: str, what: str) -> None:
    if code != 0:
        raise RemoteCommandError(f"{what}: {error.strip() or f'exit {code}'}", command=command, exit_code=code,
                                 stdout="", stderr=error)


class _ChannelSink:
    """Writes to a remote command's stdin."""

    def __init__(self, channel: paramiko.Channel):
        self.channel = channel

    def write(self, data: bytes, /) -> int:
        self.channel.sendall(data)
        return len(data)


def _copy(read: Callable[[int], bytes], sink: ByteSink) -> int:
    size = 0
    while chunk := read(65536):
        sink.write(chunk)
        size += len(chunk)
    return size


def batch_script(lines: list[str]) -> str:
    """A POSIX sh script running each command in order, whatever the previous one's exit code."""
    return parallel_script([lines])


def parallel_script(groups: list[list[str]]) -> str:
    """A POSIX sh script running the groups side by side (each group's commands in order), then
    reporting every command's exit code, stdout and stderr.

    Each command's output goes to its own files; at the end one ``wc -c`` gives every size, one
    ``cat`` the exit codes and one ``cat`` all the outputs in order — a handful of processes per
    batch, not several per command (process starts are what a batch costs on a busy host).
    """
    parts = [
        'd=$(mktemp -d 2>/dev/null) || { echo "wpfleet: mktemp failed" >&2; exit 97; }',
        "trap 'rm -rf \"$d\"' EXIT",
        ': >"$d/c"',
    ]
    number = 0
    for group in groups:
        steps = []
        for line in group:
            steps.append(f'{{ {line} ; }} >"$d/{number}.o" 2>"$d/{number}.e" </dev/null; echo "{number} $?" >>"$d/c"')
            number += 1
        last = group is groups[-1]  # the last group runs in this shell: one process fewer
        parts.append("\n".join(steps) if last else "( " + "; ".join(steps) + " ) &")
    if len(groups) > 1:
        parts.append("wait")
    files = " ".join(f'"$d/{index}.o" "$d/{index}.e"' for index in range(number))
    # the exit codes are printed by the shell itself (read/printf are built in)
    parts.append(f'echo {HEAD}; wc -c {files}; echo {CODES}; while read -r c; do printf "%s\\n" "$c"; done <"$d/c"; '
                 f'echo {BODY}; cat {files}')
    return "\n".join(parts) + "\n"


HEAD, CODES, BODY = "wpfleet-head", "wpfleet-codes", "wpfleet-body"


def parse_frames(lines: list[str], data: bytes) -> list[CommandResult]:
    """The results reported by ``parallel_script``, in order; a cut-off tail yields fewer results.

    Everything before the first body marker was written by ``wc`` and ``cat`` of our own files,
    never by a command, so a command printing the markers cannot confuse it.
    """
    head, found, body = data.partition(f"\n{BODY}\n".encode())
    if not found:
        return []
    sizes: dict[str, int] = {}
    codes: dict[int, int] = {}
    section = ""
    for raw in head.decode("utf-8", "replace").splitlines():
        words = raw.split()
        if raw in (HEAD, CODES):
            section = raw
        elif section == HEAD and len(words) == 2 and words[0].isdigit() and words[1].endswith((".o", ".e")):
            sizes[words[1].rsplit("/", 1)[-1]] = int(words[0])
        elif section == CODES and len(words) == 2 and words[0].isdigit() and words[1].lstrip("-").isdigit():
            codes[int(words[0])] = int(words[1])
    results: list[CommandResult] = []
    position = 0
    for index, line in enumerate(lines):
        out_len, err_len = sizes.get(f"{index}.o"), sizes.get(f"{index}.e")
        if out_len is None or err_len is None or index not in codes or position + out_len + err_len > len(body):
            break
        out = body[position:position + out_len].decode("utf-8", "replace")
        err = body[position + out_len:position + out_len + err_len].decode("utf-8", "replace")
        results.append(CommandResult(line, codes[index], out, err))
        position += out_len + err_len
    return results


def _drain(channel: paramiko.Channel, timeout: float, command: str) -> tuple[int, bytes, bytes]:
    """Read stdout and stderr together until the command exits, or fail at the deadline.

    Between reads the thread sleeps in ``select`` on the channel's event pipe (paramiko sets it when
    stdout or stderr data arrives, or the channel closes): an idle site costs no CPU.
    """
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    ready = channel.fileno()
    while True:
        busy = False
        if channel.recv_ready():
            out += channel.recv(65536)
            busy = True
        if channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
            busy = True
        if not busy:
            if channel.exit_status_ready() and (channel.eof_received or channel.closed):
                break
            if channel.closed and not channel.exit_status_ready():
                raise TransportError(f"ssh channel closed before the command finished: {command}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError(f"command timed out after {timeout:g}s: {command}")
            if channel.eof_received:  # all output is in; only the exit status is still on its way
                channel.status_event.wait(min(left, _IDLE_WAKE))
            else:
                select.select([ready], [], [], min(left, _IDLE_WAKE))
    code = channel.recv_exit_status()
    if code == -1 and not channel.get_transport().is_active():  # cut, not ended (an aborted shared login)
        raise paramiko.SSHException("the connection closed before the command finished")
    return code, bytes(out), bytes(err)
