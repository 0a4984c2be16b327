"""``python -m tests.killer TEXT NTH MARKER -- wpfleet-args…``: the agent, SIGKILLed by itself while the
``NTH`` remote command containing ``TEXT`` is under way — any command, not only a WP-CLI call (the
lock's ``mkdir``, ``tar -czf``, ``sha256sum``, a rollback's ``tar -xzf``, the lock's release).

The command is sent and given half a second on the host (a quick one has finished, a long one goes
on there, orphaned), then the agent dies before it reads the answer; ``MARKER`` is written first so
the test knows the step was reached.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from agent.cli import main
from inventory import transport


def arm(text: str, nth: int, marker: Path) -> None:
    original = transport.SSHTransport._exec
    seen = [0]

    def _exec(self: Any, command: str, timeout: float, stdin: bytes | None = None) -> Any:
        if text in command:
            seen[0] += 1
            if seen[0] == nth:
                threading.Thread(target=original, args=(self, command, timeout, stdin), daemon=True).start()
                time.sleep(0.5)
                marker.write_text(command)
                os.kill(os.getpid(), signal.SIGKILL)
        return original(self, command, timeout, stdin)

    transport.SSHTransport._exec = _exec  # type: ignore[method-assign]


if __name__ == "__main__":
    text, nth, marker, separator, *args = sys.argv[1:]
    assert separator == "--"
    arm(text, int(nth), Path(marker))
    sys.exit(main(args))
