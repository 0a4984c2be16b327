"""An opt-in Prometheus text endpoint (``[agent] metrics = "127.0.0.1:9101"``).

Series: ``wpfleet_site_last_success_timestamp_seconds{site}``, ``wpfleet_updates_total{site}``,
``wpfleet_rollbacks_total{site}``, ``wpfleet_site_failures_total{site}``,
``wpfleet_round_duration_seconds{job}``, ``wpfleet_job_last_run_timestamp_seconds{job}``,
``wpfleet_site_up{site}``, ``wpfleet_watch_tick_seconds`` and ``wpfleet_open_tickets``. Counters start at zero with the process.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, str], float] = defaultdict(float)
        self.gauges: dict[tuple[str, str, str], float] = {}

    def count(self, name: str, site: str, by: float = 1) -> None:
        with self._lock:
            self.counters[(name, site)] += by

    def gauge(self, name: str, label: str, value_label: str, value: float) -> None:
        with self._lock:
            self.gauges[(name, label, value_label)] = value

    def render(self, open_tickets: int) -> str:
        helps = {
            "wpfleet_updates_total": ("counter", "Updates applied, per site."),
            "wpfleet_rollbacks_total": ("counter", "Updates rolled back, per site."),
            "wpfleet_site_failures_total": ("counter", "Update rounds that failed, per site."),
            "wpfleet_site_last_success_timestamp_seconds": ("gauge", "Last successful update round, per site."),
            "wpfleet_round_duration_seconds": ("gauge", "Duration of the last run of each job."),
            "wpfleet_job_last_run_timestamp_seconds": ("gauge", "When each job last ran."),
            "wpfleet_site_up": ("gauge", "1 when the uptime watch last saw the site up."),
            "wpfleet_watch_tick_seconds": ("gauge", "How long the watch's last pass over every site took."),
        }
        lines: list[str] = []
        with self._lock:
            for name, (kind, text) in helps.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                for (counter, site), value in sorted(self.counters.items()):
                    if counter == name:
                        lines.append(f'{name}{{site="{_escape(site)}"}} {value:g}')
                for (gauge, label, label_value), value in sorted(self.gauges.items()):
                    if gauge == name:
                        labels = f'{{{label}="{_escape(label_value)}"}}' if label else ""
                        lines.append(f"{name}{labels} {value:.3f}")
        lines += ["# HELP wpfleet_open_tickets Tickets the agent has open.", "# TYPE wpfleet_open_tickets gauge",
                  f"wpfleet_open_tickets {open_tickets}"]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def serve(address: str, metrics: Metrics, open_tickets: Callable[[], int]) -> ThreadingHTTPServer:
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = metrics.render(open_tickets()).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
