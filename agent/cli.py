"""The ``wpfleet`` command line: parse, call one library function per command, render.

``main(argv)`` returns the exit code (0 all good, 1 a site failed, 2 bad usage or config);
only ``entry_point`` calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from agent import __version__, checkups, config, daemon, demo, fleet, helpdesks, logs, render, reports, security
from agent import backups as agent_backups
from agent import migrate as migration
from agent.audit import AuditLog, VerifyResult, to_csv
from agent.clock import Clock, SystemClock
from agent.config import DASHBOARD_DEFAULT, FleetConfig
from agent.errors import AlreadyRunning, ConfigError, UsageError
from agent.secrets import Redactor
from agent.services import Services, default_actor, secret_env_names
from agent.state import State
from agent.state.audit import AuditRows
from agent.state.db import StateUnavailable
from agent.updates import UpdateOptions, plan_for, update_fleet
from inventory import safety
from inventory.errors import HostileValueError
from inventory.models import SiteInventory

if TYPE_CHECKING:
    from agent.state.copy import Copied

log = logging.getLogger("wpfleet")
OK, FAILED, USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wpfleet", description="WordPress fleet maintenance agent")
    parser.add_argument("--config", help="sites.toml (default: $WPFLEET_CONFIG, else ./sites.toml)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs on stderr")
    parser.add_argument("--version", action="version", version=f"wpfleet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check_config = commands.add_parser("check-config", help="validate the config file")
    check_config.add_argument("--online", action="store_true",
                              help="also reach the helpdesk and the feed the config names; exit 2 if they do not work")
    inventory = commands.add_parser("inventory", help="what runs on every site")
    inventory.add_argument("--site", action="append", metavar="NAME")
    inventory.add_argument("--json", action="store_true")
    plan = commands.add_parser("plan", help="what would be done now (or at --at) and why")
    plan.add_argument("--site", action="append", metavar="NAME")
    plan.add_argument("--at", metavar="ISO-DATETIME", help="evaluate the plan at this moment")
    plan.add_argument("--fresh", action="store_true", help="read the sites now instead of the last inventory")
    plan.add_argument("--json", action="store_true")
    update = commands.add_parser("update", help="apply what plan says is due")
    update.add_argument("--site", action="append", metavar="NAME")
    update.add_argument("--major", action="store_true", help="also apply majors now (counts as the year's run)")
    update.add_argument("--reason", metavar="TEXT", help="why majors are applied now (required with --major)")
    update.add_argument("--dry-run", action="store_true")
    update.add_argument("--json", action="store_true")
    backup = commands.add_parser("backup", help="make a verified host backup now")
    backup.add_argument("--site", required=True, metavar="NAME")
    listing = commands.add_parser("backups", help="list host backups, or fetch one (backups fetch)")
    listing.add_argument("--site", action="append", metavar="NAME")
    listing.add_argument("--json", action="store_true")
    fetch = listing.add_subparsers(dest="verb", parser_class=_Parser).add_parser(
        "fetch", help="copy a verified host backup to this machine")
    fetch.add_argument("--site", dest="fetch_site", required=True, metavar="NAME")
    fetch.add_argument("backup_id", metavar="BACKUP_ID")
    fetch.add_argument("--to", type=Path, required=True, metavar="DIR")
    restore = commands.add_parser("restore", help="put a host backup back")
    restore.add_argument("--site", required=True, metavar="NAME")
    restore.add_argument("backup_id", metavar="BACKUP_ID")
    move = commands.add_parser("migrate", help="move a site to its main domain, or onto another host, on approval")
    move.add_argument("--site", required=True, metavar="NAME")
    move.add_argument("--to-url", required=True, metavar="URL")
    move.add_argument("--to-site", metavar="NAME", help="the sites.toml block of the new host/path (re-hosting)")
    move.add_argument("--approve", metavar="TEXT", help="who approved it and how (required; kept in the audit log)")
    move.add_argument("--dry-run", action="store_true", help="count what would be replaced; change nothing")
    move.add_argument("--json", action="store_true")
    vulns = commands.add_parser("vulns", help="known vulnerabilities of what is installed, and what is done about each")
    vulns.add_argument("--site", action="append", metavar="NAME")
    vulns.add_argument("--json", action="store_true")
    audit = commands.add_parser("audit", help="the update log for auditors")
    audit.add_argument("verb", nargs="?", choices=["verify"], help="check the hash chain")
    audit.add_argument("--site", metavar="NAME")
    audit.add_argument("--since", metavar="DATE")
    form = audit.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true")
    form.add_argument("--csv", action="store_true")
    tickets = commands.add_parser("tickets", help="tickets the agent opened, with SLA deadlines")
    tickets.add_argument("--open", action="store_true")
    tickets.add_argument("--json", action="store_true")
    check = commands.add_parser("checkup", help="the technical check-up report of each site, and a fleet overview")
    check.add_argument("--site", action="append", metavar="NAME")
    check.add_argument("--since", metavar="DATE", help="the period's start (default: the last check-up)")
    check.add_argument("--out", type=Path, metavar="DIR", help="where to write (default: state_dir/checkups/on-demand)")
    check.add_argument("--pdf", action="store_true", help="also write each report as PDF")
    check.add_argument("--json", action="store_true")
    run = commands.add_parser("run", help="the maintenance daemon")
    run.add_argument("--once", action="store_true", help="one round of everything due now, then exit")
    journal = commands.add_parser("journal", help="interrupted changes waiting to be settled; discard one whose "
                                                  "site left the config")
    journal.add_argument("verb", nargs="?", choices=["discard"])
    journal.add_argument("--site", metavar="NAME", help="the entry to discard")
    journal.add_argument("--reason", metavar="TEXT", help="why (required with discard; kept in the audit log)")
    journal.add_argument("--json", action="store_true")
    state = commands.add_parser("state", help="the agent's state: copy it between SQLite and PostgreSQL")
    state_verbs = state.add_subparsers(dest="verb", parser_class=_Parser, required=True)
    copy = state_verbs.add_parser("copy", help="copy the state and its audit log to the other kind of store, verified")
    copy.add_argument("--to", required=True, metavar="URL", help="postgresql://[user@]host[:port]/database, or sqlite:///path/wpfleet.db")
    board = commands.add_parser("dashboard", help="serve the read-only dashboard without the daemon")
    board.add_argument("--listen", metavar="ADDR", help=f"host:port (default: [agent] dashboard, else {DASHBOARD_DEFAULT})")
    status = commands.add_parser("status", help="last round per site, failures, open tickets, next jobs")
    status.add_argument("--json", action="store_true")
    demo_cmd = commands.add_parser("demo", help="a tour of the agent on a demo fleet built on this machine")
    demo_cmd.add_argument("--dir", type=Path, help="where to build it (default ./wpfleet-demo)")
    demo_cmd.add_argument("--json", action="store_true")
    demo_cmd.add_argument("--fetch-wordpress", action="store_true",
                          help="download the WordPress builds (npm, ~160 MB) so the demo includes a real WordPress")
    return parser


def main(argv: list[str] | None = None, *, clock: Clock | None = None) -> int:
    """Run one command; returns its exit code."""
    args_list = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(args_list)
    except UsageError as exc:
        print(f"wpfleet: {exc}", file=sys.stderr)
        return USAGE
    logs.setup(args.verbose)
    handler = COMMANDS[args.command]
    try:
        return handler(args, clock or SystemClock())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return USAGE
    except UsageError as exc:
        print(f"wpfleet: {exc}", file=sys.stderr)
        return USAGE
    except StateUnavailable as exc:
        print(f"wpfleet: {exc}", file=sys.stderr)
        return FAILED


def load_config(args: argparse.Namespace) -> FleetConfig:
    """The config; from here on the secrets it names are masked in every log line and in stdout."""
    loaded = config.load(config.locate(args.config))
    logs.mask(Redactor(secret_env_names(loaded)))
    return loaded


def emit(text: str) -> None:
    """Everything a command prints on stdout goes here: the config's secrets are masked."""
    sys.stdout.write(logs.masked(text))


def emit_json(document: Any) -> None:
    emit(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def cmd_check_config(args: argparse.Namespace, clock: Clock) -> int:
    loaded = load_config(args)
    problems = config.missing_secrets(loaded)
    if problems:
        raise ConfigError(problems)
    if args.online:
        problems, warnings = online_problems(loaded)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if problems:
            raise ConfigError(problems)
    print(f"{loaded.source}: ok, {len(loaded.sites)} site(s)" + (", the outside parties answer" if args.online else ""),
          file=sys.stderr)
    return OK


def online_problems(loaded: FleetConfig) -> tuple[list[str], list[str]]:
    """What the outside parties the config names say (problems, warnings): the helpdesk's token,
    queue and rights, and the vulnerability feed's URL."""
    problems: list[str] = []
    warnings: list[str] = []
    helpdesk = helpdesks.helpdesk_for(loaded.tickets)
    if helpdesk is not None:
        try:
            problems += [f"tickets: {p}" for p in helpdesk.check()]
            warnings += [f"tickets: {w}" for w in helpdesk.warnings()] if not problems else []
        except (helpdesks.HelpdeskDown, helpdesks.HelpdeskRefused) as exc:
            problems.append(f"tickets: {exc}")
    if loaded.agent.state_url:
        from agent.state.db import StateUnavailable
        from agent.state.postgres import PostgresDatabase

        try:
            PostgresDatabase(loaded.agent.state_url).close()  # reached, and its schema migrated
        except (StateUnavailable, OSError) as exc:
            problems.append(f"agent.state_url: {exc}")
        except Exception as exc:  # noqa: BLE001 - psycopg's refusals (no such database, no right to create)
            problems.append(f"agent.state_url: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    feed = loaded.vulnerabilities
    if feed is not None and feed.url is not None:
        try:
            answer = requests.head(str(feed.url), timeout=15, headers={"Authorization": f"Bearer {feed.token()}"}
                                   if feed.token() else {}, allow_redirects=True)
            if answer.status_code >= 400:
                problems.append(f"vulnerabilities.url: HTTP {answer.status_code}")
        except requests.RequestException as exc:
            problems.append(f"vulnerabilities.url: unreachable ({type(exc).__name__})")
    return problems, warnings


def run_inventory(loaded: FleetConfig, names: list[str] | None, clock: Clock) -> list[SiteInventory]:
    return fleet.inventory_and_audit(loaded, names, clock, default_actor())


def cmd_inventory(args: argparse.Namespace, clock: Clock) -> int:
    loaded = load_config(args)
    results = run_inventory(loaded, args.site, clock)
    if args.json:
        emit_json([r.to_public() for r in results])
    else:
        emit(render.inventory_table(results))
    flagged = any(c.vulnerabilities for r in results for c in ([r.core] if r.core else []) + r.plugins + r.themes)
    if flagged:  # the feed's copyright notices go wherever its data is shown (stderr keeps --json clean)
        with Services.open(loaded, clock) as services:
            feed = services.state.vulns.feed()
        notices = "".join(f"{line}\n" for line in (feed.notices if feed else []))
        if args.json:
            sys.stderr.write(notices)
        else:
            emit(notices)
    return OK if all(r.ok for r in results) else FAILED


def cmd_demo(args: argparse.Namespace, clock: Clock) -> int:
    from agent.demo.tour import run_tour

    return run_tour(args.dir or demo.default_folder(), clock, as_json=args.json, fetch_wordpress=args.fetch_wordpress)


def _parse_at(text: str, zone: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at: {text!r} is not an ISO date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def cmd_plan(args: argparse.Namespace, clock: Clock) -> int:
    loaded = load_config(args)
    sites = loaded.select(args.site)
    at = _parse_at(args.at, loaded.agent.zone) if args.at else clock.now()
    with Services.open(loaded, clock) as services:
        snapshots: dict[str, dict[str, Any]] = {}
        for site in sites:
            last = None if args.fresh else services.state.snapshots.last(site.name)
            if last is not None:
                snapshots[site.name] = last[1]
                log.info("%s: planning from the inventory of %s", site.name, last[0].isoformat(timespec="seconds"))
        missing = [s.name for s in sites if s.name not in snapshots]
        unreadable = []
        for fresh in (run_inventory(loaded, missing, clock) if missing else []):
            if fresh.ok or fresh.core is not None:
                snapshots[fresh.site] = fresh.to_public()
            else:
                unreadable.append(fresh.site)
                log.error("%s: cannot plan: %s", fresh.site, fresh.error)
        today = at.astimezone(loaded.agent.zone).date()
        items = [i for site in sites if site.name in snapshots
                 for i in plan_for(services, site, snapshots[site.name], False, today)]
    if args.json:
        emit_json([i.public() for i in items])
    else:
        emit(render.plan_table(items, today))
    return FAILED if unreadable else OK


def cmd_update(args: argparse.Namespace, clock: Clock) -> int:
    if args.major and not (args.reason or "").strip():
        raise UsageError("--major needs --reason TEXT: who applies majors now, and why, goes to the audit log")
    loaded = load_config(args)
    sites = loaded.select(args.site)
    with Services.open(loaded, clock) as services:
        options = UpdateOptions(force_major=args.major, reason=args.reason, dry_run=args.dry_run)
        if args.major and not args.dry_run:
            services.audit.append("major_requested", detail={"reason": args.reason, "sites": [s.name for s in sites]})
        results = update_fleet(services, sites, options)
    if args.json:
        emit_json([r.public() for r in results])
    else:
        emit(render.update_table(results))
    return FAILED if any(r.status in ("failed", "rolled_back") for r in results) else OK


def cmd_backup(args: argparse.Namespace, clock: Clock) -> int:
    return _one_site(args, clock, agent_backups.backup_now)


def cmd_restore(args: argparse.Namespace, clock: Clock) -> int:
    return _one_site(args, clock, lambda services, site: agent_backups.restore_backup(services, site, args.backup_id))


def _one_site(args: argparse.Namespace, clock: Clock,
              action: Callable[[Services, config.SiteConfig], agent_backups.Outcome]) -> int:
    loaded = load_config(args)
    site = loaded.select([args.site])[0]
    with Services.open(loaded, clock) as services:
        outcome = action(services, site)
    if outcome.ok:
        emit(outcome.message + "\n")
    else:
        print(logs.masked(outcome.message), file=sys.stderr)
    return OK if outcome.ok else FAILED


def cmd_backups(args: argparse.Namespace, clock: Clock) -> int:
    if args.verb == "fetch":
        args.site = args.fetch_site
        return _one_site(args, clock, lambda services, site: agent_backups.fetch(services, site, args.backup_id,
                                                                                  args.to.resolve()))
    loaded = load_config(args)
    with Services.open(loaded, clock) as services:
        entries = agent_backups.list_all(services, loaded.select(args.site))
    if args.json:
        emit_json(entries)
    else:
        emit(render.backups_table(entries))
    return FAILED if any("error" in e for e in entries) else OK


def cmd_migrate(args: argparse.Namespace, clock: Clock) -> int:
    if not (args.approve or "").strip() and not args.dry_run:
        raise UsageError("migrate needs --approve TEXT: the support unit's approval goes to the audit log")
    try:
        safety.site_url(args.to_url)
    except HostileValueError:
        raise UsageError(f"--to-url {args.to_url!r} is not a site address (http(s)://host[:port][/path])") from None
    loaded = load_config(args)
    site = loaded.select([args.site])[0]
    target = loaded.select([args.to_site])[0] if args.to_site else None
    request = migration.Request(args.to_url, (args.approve or "").strip(), target, args.dry_run)
    with Services.open(loaded, clock) as services:
        done = migration.migrate(services, site, request)
    if args.json:
        emit_json(done.public())
    else:
        emit(render.migration_text(done.public()))
    return OK if done.status in ("migrated", "planned") else FAILED


def cmd_vulns(args: argparse.Namespace, clock: Clock) -> int:
    loaded = load_config(args)
    if loaded.vulnerabilities is None:
        raise UsageError("no [vulnerabilities] feed is configured in the config")
    sites = loaded.select(args.site)
    with Services.open(loaded, clock) as services:
        report = security.fleet_report(services, sites)
    if args.json:
        emit_json(report)
    else:
        emit(render.vulns_text(report))
    feed = report["feed"]
    return FAILED if report["not_inventoried"] or feed is None or feed["read_at"] is None else OK


def cmd_audit(args: argparse.Namespace, clock: Clock) -> int:
    loaded = load_config(args)
    with State.open(loaded.agent) as state:
        return _audit(args, AuditLog(loaded.agent.state_dir, clock, "auditor", db=state.db))


def _audit(args: argparse.Namespace, audit: AuditLog) -> int:
    if args.verb == "verify":
        verdict = audit.verify()
        if verdict.ok:
            emit(f"audit log verifies: {verdict.records} records\n")
            return OK
        emit(f"audit log broken at seq {verdict.bad_seq}: {verdict.reason}\n")
        return FAILED
    try:
        since = date.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise UsageError(f"--since: {args.since!r} is not an ISO date") from None
    records = audit.query(site=args.site, since=since)
    if args.json:
        emit_json(records)
    elif args.csv:
        emit(to_csv(records))
    else:
        emit(render.audit_table(records))
    return OK


def cmd_tickets(args: argparse.Namespace, clock: Clock) -> int:
    loaded = load_config(args)
    with Services.open(loaded, clock) as services:
        rows = reports.ticket_rows(services, services.tickets.all(open_only=args.open))
        pending = services.tickets.pending()
    if args.json:
        emit_json(rows)
    else:
        emit(render.tickets_table(rows, pending))
    return OK


def cmd_checkup(args: argparse.Namespace, clock: Clock) -> int:
    loaded = load_config(args)
    sites = loaded.select(args.site)
    try:
        since = date.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise UsageError(f"--since: {args.since!r} is not an ISO date") from None
    out = args.out or loaded.agent.state_dir / "checkups" / "on-demand"
    with Services.open(loaded, clock) as services:
        reports, overview = checkups.write_fleet(services, sites, since, out.resolve(), pdf=args.pdf)
    if args.json:
        emit_json([r.public() for r in reports])
    else:
        emit(render.checkup_table(reports, overview))
    unread = [r.site for r in reports if r.facts.get("error")]
    for name in unread:
        log.error("%s: the site could not be read; its report shows no data", name)
    no_pdf = args.pdf and any(r.files["pdf"] is None for r in reports)
    return FAILED if len(reports) < len(sites) or unread or no_pdf else OK


def cmd_run(args: argparse.Namespace, clock: Clock) -> int:
    loaded = load_config(args)
    logs.setup(args.verbose, loaded.agent.log_format)
    return daemon.run(loaded, clock, once=args.once)


def cmd_journal(args: argparse.Namespace, clock: Clock) -> int:
    """The journal's open entries; ``discard``: drop one whose site is no longer in the config, or whose
    backup is gone from the host (a site still in it, with its backup, is settled by its next run,
    never discarded: that would forget a change half made)."""
    loaded = load_config(args)
    with Services.open(loaded, clock) as services:
        journal = services.state.journal
        if args.verb != "discard":
            entries = [{"site": e.site, "kind": e.kind, "run": e.run_id, "started_at": e.started_at,
                        "backup_id": e.backup_id, "step": e.step, "phase": e.phase,
                        "in_config": any(s.name == e.site for s in loaded.sites)}
                       for e in (journal.open(name) for name in journal.sites()) if e is not None]
            if args.json:
                emit_json(entries)
            else:
                emit("".join(f"{e['site']:<12} {e['kind']:<8} run {e['run']} since {e['started_at']} backup "
                             f"{e['backup_id']} phase {e['phase']}"
                             f"{'' if e['in_config'] else '  (site not in the config: settle it by adding it back, or discard)'}\n"
                             for e in entries) or "no interrupted change\n")
            return OK
        if not args.site or not (args.reason or "").strip():
            raise UsageError("journal discard needs --site NAME and --reason TEXT")
        entry = journal.open(args.site)
        if entry is None:
            raise UsageError(f"no journal entry for {args.site}")
        configured = next((s for s in loaded.sites if s.name == args.site), None)
        gone = configured is not None and _undo_is_gone(services, configured, entry.backup_id)
        if configured is not None and not gone:
            raise UsageError(f"{args.site} is in the config and its backup {entry.backup_id} is on the host: its "
                             "next run settles it from the journal")
        journal.end(args.site)
        services.audit.append("journal_discarded", site=args.site, detail={
            "reason": args.reason.strip(), "kind": entry.kind, "run": entry.run_id, "backup_id": entry.backup_id,
            "step": entry.step, "phase": entry.phase, "backup_gone": gone})
    if gone:
        emit(f"{args.site}: journal entry of run {entry.run_id} discarded: its backup {entry.backup_id} is gone from "
             "the host, so nothing can undo that run; the site is left as it is (no .maintenance) and its next run "
             "reads it afresh\n")
        return OK
    emit(f"{args.site}: journal entry of run {entry.run_id} discarded (backup {entry.backup_id} was its undo)\n")
    return OK


def _undo_is_gone(services: Services, site: config.SiteConfig, backup_id: str | None) -> bool:
    """A configured site's journal may be discarded only when the backup it names is gone from the
    host (asked under the site's lock): a run could never settle it. Its maintenance marker goes too."""
    from agent.sessions import site_session
    from playbooks import backup as backups

    with site_session(services, site) as session:
        if backups.find(session.handle, backup_id or "") is not None:
            return False
        session.handle.clear_maintenance()
        return True


def cmd_status(args: argparse.Namespace, clock: Clock) -> int:
    loaded = load_config(args)
    with Services.open(loaded, clock) as services:
        report = reports.status_report(services)
    if args.json:
        emit_json(report)
    else:
        emit(render.status_text(report))
    return OK


def cmd_state(args: argparse.Namespace, clock: Clock) -> int:
    """``state copy --to URL``: this config's state into the other kind, verified record by record —
    SQLite into PostgreSQL (``postgresql://…``), or PostgreSQL back into an SQLite file
    (``sqlite:///path/wpfleet.db``). Refused while a daemon works on the source."""
    from agent.state.copy import CopyRefused

    loaded = load_config(args)
    try:
        if args.to.startswith("sqlite:"):
            return _copy_to_sqlite(loaded, args.to, clock)
        return _copy_to_postgres(loaded, args.to, clock)
    except CopyRefused as exc:
        emit(f"{exc}\n")
        return FAILED


def _copy_to_postgres(loaded: config.FleetConfig, to: str, clock: Clock) -> int:
    from agent.state.copy import CopyRefused, audit_lines, compare_audit, copy_state
    from agent.state.db import Database
    from agent.state.postgres import PostgresDatabase, redacted

    try:
        config.AgentConfig(state_url=to)
    except ValueError as exc:
        raise UsageError(f"--to: {str(exc).splitlines()[-1].strip()}") from None
    if loaded.agent.state_url:
        raise UsageError("--to postgresql://…: the config's state is already PostgreSQL (to go back to one machine: "
                         "--to sqlite:///path/wpfleet.db)")
    state_file = loaded.agent.state_dir / "wpfleet.db"
    if not state_file.exists():
        raise UsageError(f"no SQLite state at {state_file} to copy")
    try:  # the run lock: a daemon on this state holds it for its whole life
        held = daemon.single_instance(loaded.agent.state_dir)
    except AlreadyRunning as exc:
        raise CopyRefused(f"a daemon works on this state ({exc}): stop it first, nothing was copied") from None
    try:
        source_log = AuditLog(loaded.agent.state_dir, clock, "state-copy")
        verdict = source_log.verify()
        if not verdict.ok:
            emit(f"the audit file is broken at seq {verdict.bad_seq} ({verdict.reason}): nothing copied\n")
            return FAILED
        source, target = Database(state_file), PostgresDatabase(to)
        try:
            lines = audit_lines(source_log.path)
            copied = copy_state(source, lines, target)
            copied.mismatches += compare_audit(lines, [x.encode() for x in AuditRows(target).lines()])
            chain = AuditLog(loaded.agent.state_dir, clock, "state-copy", db=target).verify()
        finally:
            source.close()
            target.close()
    finally:
        held.close()
    return _copied(redacted(to), copied, chain)


def _copy_to_sqlite(loaded: config.FleetConfig, to: str, clock: Clock) -> int:
    from agent.state.agents import Agents
    from agent.state.copy import CopyRefused, audit_lines, compare_audit, copy_state
    from agent.state.postgres import PostgresDatabase

    path = Path(to.removeprefix("sqlite://"))
    if not to.startswith("sqlite:///") or path.name != "wpfleet.db":
        raise UsageError("--to: sqlite:///path/to/wpfleet.db (an absolute path; its folder becomes the state_dir)")
    if not loaded.agent.state_url:
        raise UsageError("--to sqlite:…: the config's state is already SQLite (to share it: --to postgresql://…)")
    if path.exists() or (path.parent / "audit.jsonl").exists():
        raise CopyRefused(f"{path.parent} already holds a state: nothing was copied")
    source = PostgresDatabase(str(loaded.agent.state_url))
    try:
        live = [a for a in Agents(source).all() if a["alive"]]
        if live:
            raise CopyRefused("agents still work on this state (" + ", ".join(
                f"{a['id']} on {a['host']}, pid {a['pid']}" for a in live) + "): stop them first, nothing was copied")
        lines = [x.encode() for x in AuditRows(source).lines()]
        path.parent.mkdir(parents=True, exist_ok=True)
        with State(path.parent) as made:  # every repository's schema, empty
            copied = copy_state(source, lines, made.db)
        (path.parent / "audit.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
        written = AuditLog(path.parent, clock, "state-copy")
        copied.mismatches += compare_audit(lines, audit_lines(written.path))
        chain = written.verify()
    finally:
        source.close()
    return _copied(str(path), copied, chain)


def _copied(where: str, copied: Copied, chain: VerifyResult) -> int:
    rows = sum(copied.tables.values())
    emit(f"copied to {where}: {rows} rows in {len(copied.tables)} tables, {copied.audit_records} audit "
         f"records\n" + "".join(f"  {t}: {n}\n" for t, n in copied.tables.items() if n))
    for problem in copied.mismatches:
        emit(f"MISMATCH {problem}\n")
    emit(f"verified record by record: {'identical' if copied.ok else 'DIFFERENT'}; audit chain there: "
         + ("verifies\n" if chain.ok else f"broken at seq {chain.bad_seq}\n"))
    return OK if copied.ok and chain.ok and chain.records == copied.audit_records else FAILED


def cmd_dashboard(args: argparse.Namespace, clock: Clock) -> int:
    """The dashboard without the daemon, until SIGTERM or SIGINT."""
    from agent.dashboard import Dashboard

    loaded = load_config(args)
    address = args.listen or loaded.agent.dashboard or DASHBOARD_DEFAULT
    if args.listen and not re.fullmatch(config.ADDRESS, args.listen):
        raise UsageError(f"--listen: {args.listen!r} is not host:port")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    board = Dashboard(loaded, clock, address).start()
    emit(f"dashboard on {board.server.url}/\n")
    try:
        stop.wait()
    finally:
        board.stop()
    return OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Clock], int]] = {
    "check-config": cmd_check_config,
    "migrate": cmd_migrate,
    "vulns": cmd_vulns,
    "inventory": cmd_inventory,
    "plan": cmd_plan,
    "update": cmd_update,
    "backup": cmd_backup,
    "backups": cmd_backups,
    "restore": cmd_restore,
    "audit": cmd_audit,
    "tickets": cmd_tickets,
    "checkup": cmd_checkup,
    "run": cmd_run,
    "status": cmd_status,
    "journal": cmd_journal,
    "demo": cmd_demo,
    "dashboard": cmd_dashboard,
    "state": cmd_state,
}


def entry_point() -> None:
    sys.exit(main())
