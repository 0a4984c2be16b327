"""A site as the playbooks see it: its host, its WordPress root, its WP-CLI and its web address."""

from __future__ import annotations

import contextlib
import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from inventory import safety
from inventory.errors import InventoryError
from inventory.rest import make_session
from inventory.transport import END_RUNNING, CommandResult, Transport
from inventory.wpcli import WPCLI, json_of
from playbooks.errors import PlaybookError

RUNNING = ".wpfleet.running"  # beside the lock: the process groups of the commands a run has under way
END_GRACE = 20.0  # what a command left running gets between SIGTERM and SIGKILL


@dataclass
class SiteHandle:
    name: str
    url: str
    root: str
    backup_dir: str
    transport: Transport
    wp: WPCLI
    settle_seconds: float = 0.0
    health_pages: tuple[str, ...] = ("/",)
    visual: Any = None  # a playbooks.visual.VisualCheck while a run judges the pages in a browser too
    http: requests.Session = field(default_factory=lambda: make_session(retries=1, backoff=0.2))

    def path(self, *parts: str) -> str:
        """A path under the WordPress root; ``parts`` must be validated already."""
        return safety.remote_path(posixpath.join(self.root, *parts))

    def backup_path(self, *parts: str) -> str:
        return safety.remote_path(posixpath.join(self.backup_dir, *parts))

    def sh(self, argv: Sequence[str], what: str, *, stdin: bytes | None = None, ok: Sequence[int] = (0,),
           timeout: float | None = None) -> CommandResult:
        """Run a plain command on the host; any exit code outside ``ok`` is a ``PlaybookError``."""
        result = self.transport.run(argv, stdin=stdin, timeout=timeout)
        if result.exit_code not in ok:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise PlaybookError(f"{what} failed on {self.name}: {detail[-1] if detail else f'exit {result.exit_code}'}")
        return result

    def installed(self, kind: str) -> dict[str, str]:
        """Plugin or theme names and versions as the files say (no plugin or theme code runs)."""
        listing = json_of(self.wp.run(kind, "list", "--fields=name,version", "--skip-update-check", "--format=json",
                                      skip_plugins=True))
        if not isinstance(listing, list):
            raise ValueError(f"{kind} list: expected a list")
        return {safety.slug(str(r["name"])): str(r.get("version") or "") for r in listing
                if isinstance(r, dict) and "name" in r}

    def resolve_paths(self) -> None:
        """The root and the backup folder as the host resolves them (either may be, or lie under, a
        symlink): what keeps "is the backup folder inside the root?" and ``du``/``find`` right."""
        lines = self.sh(["realpath", "-m", "--", self.root, self.backup_dir], "resolving the site's paths")
        resolved = lines.stdout.splitlines()
        if len(resolved) != 2:
            raise PlaybookError(f"resolving {self.root} and {self.backup_dir} on {self.name}: unexpected answer")
        self.root, self.backup_dir = (safety.remote_path(p) for p in resolved)

    def settle(self) -> None:
        """Give the web server's PHP time to see changed files (OPcache revalidation) before probing."""
        if self.settle_seconds:
            time.sleep(self.settle_seconds)

    def exists(self, path: str) -> bool:
        return self.transport.run(["test", "-e", path]).exit_code == 0

    def write_file(self, path: str, data: bytes) -> None:
        self.sh(["sh", "-c", 'cat > "$1"', "sh", path], f"writing {path}", stdin=data)

    def track_commands(self) -> None:
        """From now on every command this handle runs can be ended by a later ``end_running``."""
        self.transport.track = self.backup_path(RUNNING)

    def untrack_commands(self) -> None:
        """The run is over: its folder of running commands goes when empty (best effort)."""
        self.transport.track = None
        with contextlib.suppress(InventoryError):
            self.transport.run(["rmdir", "--ignore-fail-on-non-empty", "--", self.backup_path(RUNNING)],
                               tracked=False)

    def end_running(self, grace: float = END_GRACE) -> list[str]:
        """End the commands an earlier run of this site left running on the host (the agent stopped at
        once, or was killed, while WP-CLI worked on): SIGTERM to each one's process group, SIGKILL
        after ``grace`` seconds; waits until they are gone. The process groups it ended."""
        result = self.transport.run(["sh", "-c", END_RUNNING, "sh", self.backup_path(RUNNING), str(int(grace))],
                                    tracked=False, timeout=grace + 30)
        if not result.ok:
            raise PlaybookError(f"cannot end the commands left running on {self.name}: "
                                f"{(result.stderr or result.stdout).strip() or result.exit_code}")
        return result.stdout.split()

    def clear_maintenance(self) -> bool:
        """Remove ``.maintenance`` if present; True when one was left behind."""
        marker = self.path(".maintenance")
        if not self.exists(marker):
            return False
        self.sh(["rm", "-f", marker], "removing .maintenance")
        return True

    def relative_backup_dir(self) -> str | None:
        """The backup folder as a path inside the root (``./x/y``), or None when it lies outside."""
        root = self.root.rstrip("/") + "/"
        if self.backup_dir.startswith(root):
            return "./" + self.backup_dir[len(root):].strip("/")
        if root.startswith(self.backup_dir.rstrip("/") + "/"):
            raise PlaybookError(f"backup_dir {self.backup_dir} contains the WordPress root {self.root}")
        return None
