"""The documents ``--json`` prints that the dashboard's ``/api`` answers too: one builder each."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agent.services import Services
from agent.state import share
from agent.state.tickets import Ticket
from agent.state.vulns import as_public

JOB_ORDER = ("watch", "inventory", "update", "retention", "checkup")


def ticket_rows(services: Services, tickets: list[Ticket]) -> list[dict[str, Any]]:
    """``tickets --json``: each ticket with what the helpdesk tells of its first response."""
    now, helpdesk = services.clock.now(), services.helpdesk is not None
    return [t.public() | {"helpdesk_id": t.helpdesk_id, "first_response_at": t.first_response_at,
                          "response": t.response(now, helpdesk)} for t in tickets]


def status_report(services: Services) -> dict[str, Any]:
    state, now = services.state, services.clock.now()
    jobs = state.jobs.all()
    intervals = services.config.agent.intervals
    down = state.watch.down_sites()
    tick = state.watch.last_tick()
    nexts = state.checkups.next_dues()
    results = state.sites.all()
    certificates = state.watch.certificates()
    return {
        "at": now.isoformat(timespec="seconds"),
        "jobs": [{"job": job, "last_run": jobs[job]["last_run"].isoformat(timespec="seconds") if job in jobs else None,
                  "status": jobs[job]["status"] if job in jobs else None,
                  "next_due": (jobs[job]["last_run"] + timedelta(seconds=intervals[job])).isoformat(timespec="seconds")
                  if job in jobs else now.isoformat(timespec="seconds")}
                 for job in JOB_ORDER],
        "sites": [{"site": s.name, **results.get(s.name, {"last_update": None, "status": None, "error": None,
                                                          "last_success": None}),
                   "down_since": down.get(s.name), "next_checkup": nexts.get(s.name),
                   "certificate_expires": certificates.get(s.name)} for s in services.config.sites],
        "watch": {"last_tick_at": tick.at if tick else None, "tick_seconds": tick.seconds if tick else None,
                  "sites_checked": tick.sites if tick else None, "down": list(down)},
        "agents": _with_parts(services, state.agents.all(now)),
        "open_tickets": services.tickets.open_count(),
        "deliveries_waiting": services.tickets.pending(),
        "delivery_error": services.state.tickets.last_error(),
        "deliveries_parked": [{"ticket": t, "event": e, "why": why} for t, e, why in services.state.tickets.parked()],
        "vulnerability_feed": as_public(state.vulns.feed(), now) if services.config.vulnerabilities else None,
    }


def _with_parts(services: Services, agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each agent with ``watches``: how many sites its part of the watch holds. On a shared state the
    parts are computed as the agents compute them (``agent/state/share.py``), over the agents alive;
    alone, the one agent watches every site."""
    names = [site.name for site in services.config.sites]
    if not services.state.shared:
        return [a | {"watches": len(names) if a["alive"] else 0} for a in agents]
    counts = {agent: len(part) for agent, part in share.parts(names, [a["id"] for a in agents if a["alive"]]).items()}
    return [a | {"watches": counts.get(a["id"], 0)} for a in agents]
