"""The one seam through which every remote command runs.

``SSHTransport`` logs in once (key auth, host key checked against the site's known_hosts file,
never added) and runs every command of an operation over that one login. ``LocalTransport`` runs
commands on the agent's own host, for sites that live there. Neither retries a command.
"""

from __future__ import annotations

import os
import socket
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from inventory import safety
from inventory.errors import HostKeyError, TransportError

DEFAULT_COMMAND_TIMEOUT = 300.0


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class Transport(ABC):
    """Runs argument lists on a site's host; counts what it did for the benchmarks."""

    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    commands_run: int = field(default=0, init=False)
    logins: int = field(default=0, init=False)

    def run(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> CommandResult:
        """Run one command built from already validated arguments; never raises on exit codes."""
        env_words = [f"{safety.env_name(k)}={safety.word(v)}" for k, v in (env or {}).items()]
        full = ["env", *env_words, *argv] if env_words else list(argv)
        self.commands_run += 1
        return self._execute(full, timeout or self.command_timeout)

    @abstractmethod
    def _execute(self, argv: list[str], timeout: float) -> CommandResult: ...

    def close(self) -> None:
        """Release the connection, if any."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass
class LocalTransport(Transport):
    """Runs commands on the agent's own host, without a shell."""

    def _execute(self, argv: list[str], timeout: float) -> CommandResult:
        command = safety.join(argv)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                errors="replace",
            )
        except subprocess.TimeoutExpired as exc:
            raise TransportError(f"command timed out after {timeout:g}s: {command}") from exc
        except OSError as exc:
            raise TransportError(f"cannot run {argv[0]}: {exc.strerror}") from exc
        return CommandResult(command, done.returncode, done.stdout, done.stderr)


@dataclass
class SSHTransport(Transport):
    """One SSH login, opened lazily, carrying all the commands of one operation."""

    host: str = ""
    port: int = 22
    user: str = ""
    key_file: Path = Path()
    known_hosts: Path = Path()
    connect_timeout: float = 15.0
    _connection: Connection | None = field(default=None, init=False, repr=False)

    def _connect(self) -> Connection:
        if self._connection is not None:
            return self._connection
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
        except (OSError, socket.timeout, EOFError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise TransportError(f"ssh to {self.host}:{self.port} failed: {reason}") from exc
        self.logins += 1
        self._connection = connection
        return connection

    def _execute(self, argv: list[str], timeout: float) -> CommandResult:
        command = safety.join(argv)
        connection = self._connect()
        try:
            result = connection.run(
                command, hide=True, warn=True, timeout=timeout, in_stream=False, pty=False
            )
        except CommandTimedOut as exc:
            self.close()
            raise TransportError(f"command timed out after {timeout:g}s: {command}") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise TransportError(f"ssh connection to {self.host} lost: {exc}") from exc
        exit_code = result.exited if result.exited is not None else -1
        if exit_code == -1:
            self.close()
            raise TransportError(f"ssh connection to {self.host} lost while running: {command}")
        return CommandResult(command, exit_code, result.stdout, result.stderr)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def expand(path: str | os.PathLike[str]) -> Path:
    """A local path with ``~`` expanded."""
    return Path(os.path.expanduser(os.fspath(path)))
