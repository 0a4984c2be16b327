"""A dashboard's state written directly (no site is ever contacted): sites in every condition the
fleet page must rank and count, with their watch days, tickets, rounds and audit records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent import demo
from agent.audit import AuditLog
from agent.clock import FixedClock
from agent.state import State
from agent.state.tickets import Ticket
from agent.state.watch import LastTick, Watched
from inventory.models import CoreState, Extension, Offer, SiteInventory

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)  # a Sunday: a support day in Tehran, 13:30 there
LONG_ERROR = "\n".join(f"line {n}: PHP Fatal error: Uncaught Error in /srv/x/wp-content/plugins/p/p.php:{n}"
                       for n in range(1, 11))
QUIET = [f"quiet-{n:02d}" for n in range(12)]
NAMED = ["down-site", "emerg-site", "overdue-site", "failed-site", "vuln-site", "major-site"]
# what needs someone now, first: down; emergency, then overdue tickets; a failed round; a vulnerability;
# another open ticket; updates waiting; the rest by name
ORDER = ["down-site", "emerg-site", "overdue-site", "failed-site", "vuln-site", "quiet-05", "major-site",
         *(q for q in QUIET if q != "quiet-05")]


@dataclass
class Board:
    folder: Path
    config: Path


def inventory(name: str, core: str = "6.6.2", offers: list[Offer] | None = None, closed: bool = False) -> dict[str, object]:
    plugins = [Extension(name="akismet", version="5.3.0", status="active"),
               Extension(name="contact-form-7", version="5.9.8", status="active")]
    made = SiteInventory(site=name, ok=True, core=CoreState(version=core, updates=offers or []), plugins=plugins,
                         themes=[Extension(name="twentytwentyfour", version="1.2", status="active")], php="8.2.10",
                         sources=["wp-cli"])
    made.update_source.reachable, made.update_source.last_checked = True, AT.isoformat(timespec="seconds")
    data = made.to_public()
    if closed:
        data["plugins"][1] |= {"wporg": "closed", "wporg_note": "closed on 2026-10-01: security issue"}  # type: ignore[index]
    return data


def build(folder: Path, port: int, lang: str = "en", extra: str = "", ticked: bool = True) -> Board:
    names = NAMED + QUIET
    folder.mkdir(parents=True, exist_ok=True)
    contract = demo.CONTRACT + (f'checkup_lang = "{lang}"\n' if lang != "en" else "")
    blocks = "".join(f'[[sites]]\nname = "{n}"\nurl = "https://{n}.example/"\npath = "/srv/{n}"\n' for n in names)
    config = folder / "sites.toml"
    config.write_text(f'[agent]\nstate_dir = "{folder / "state"}"\ndashboard = "127.0.0.1:{port}"\n{extra}\n'
                      + contract + "\n" + blocks)
    state = State(folder / "state")
    try:
        for name in names:
            offers = [Offer(version="6.5.5", type="minor"), Offer(version="6.6.2", type="major")] \
                if name == "major-site" else []
            state.snapshots.save(name, AT - timedelta(hours=2), True,
                                 inventory(name, "6.5.3" if name == "major-site" else "6.6.2", offers,
                                           closed=name == "vuln-site"))
            state.sites.record(name, AT - timedelta(hours=1), "rolled_back" if name == "failed-site" else "unchanged",
                               LONG_ERROR if name == "failed-site" else None)
        state.watch.put(Watched("down-site", failures=3, down_since=(AT - timedelta(minutes=20)).isoformat(),
                                reason="no answer in 10 s", last_check=AT.isoformat()))
        if ticked:
            state.watch.ticked(LastTick(AT.isoformat(timespec="seconds"), 1.5, len(names)))
        for back in range(30):  # failed-site: 30 days watched, one bad day; its answers slow down
            day = (AT - timedelta(days=back)).date()
            for n in range(4):
                state.watch.count(day, [("failed-site", not (back == 3 and n < 2), 200 + 10 * back)])
        for ticket_id, site, severity, due in (("WPF-emerg", "emerg-site", "emergency", AT + timedelta(minutes=50)),
                                               ("WPF-late", "overdue-site", "normal", AT - timedelta(minutes=77)),
                                               ("WPF-calm", "quiet-05", "normal", AT + timedelta(hours=20))):
            state.tickets.open(Ticket(ticket_id, site, "update_failed", severity, f"{site}: something failed", "",
                                      (AT - timedelta(hours=2)).isoformat(), due.isoformat(), f"{site}:x",
                                      updated_at=AT.isoformat()))
        state.sites.record("quiet-05", AT - timedelta(hours=1), "unchanged", None)
    finally:
        state.close()
    audit = AuditLog(folder / "state", FixedClock(AT - timedelta(hours=1)), "wpfleet")
    audit.append("backup", site="failed-site", detail={"backup_id": "20261206T083000Z", "size": 1_536_000})
    audit.append("update_run", site="failed-site", result="rolled_back",
                 detail={"run": "r-1", "error": LONG_ERROR,
                         "changes": [{"kind": "plugin", "name": "contact-form-7", "from": "5.9.3", "to": "5.9.8"}],
                         "checks": {"home": 500, "rest": "ok"}})
    return Board(folder, config)


def audit_lines(folder: Path, count: int) -> None:
    """``count`` audit records in a valid chain, written at once (appending one by one takes minutes)."""
    from agent.audit import GENESIS, line_of, record_hash

    previous = GENESIS
    with open(folder / "state" / "audit.jsonl", "wb") as log:
        for seq in range(1, count + 1):
            record = {"seq": seq, "at": (AT - timedelta(seconds=count - seq)).isoformat(timespec="seconds"),
                      "actor": "wpfleet", "site": f"quiet-{seq % 12:02d}", "action": "update_run",
                      "detail": {"run": f"r-{seq}", "changes": [{"kind": "plugin", "name": "akismet", "from": "5.3.0",
                                                                "to": "5.3.1"}], "note": "x" * 200},
                      "result": "updated", "prev_hash": previous}
            record["hash"] = previous = record_hash(record)
            log.write(line_of(record) + b"\n")


def site_rows(page: object) -> list[str]:
    """The fleet table's sites, in the order the browser shows them."""
    return list(page.eval_on_selector_all("#fleet tbody tr", "rows => rows.map(r => r.dataset.site)"))  # type: ignore[attr-defined]

