"""Several agents, one fleet: the state in a real PostgreSQL, real agent processes, kill -9."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from agent.cli import main
from agent.clock import FixedClock
from agent.config import load
from agent.daemon import single_instance
from agent.demo import DemoSite
from agent.services import Services
from tests import postgres as pg
from tests import sshd as sshd_mod
from tests.conftest import Fleet, plugin_version, require
from tests.test_daemon import ROOT, wait_for

AT = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
SITES = [DemoSite(f"site{n}", "6.5.3", {"akismet": ("5.3.0", True), "contact-form-7": ("5.9.3", True)})
         for n in range(4)]


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.Postgres]:
    require(pg.available(), "PostgreSQL (Debian's postgresql) is not installed")
    server = pg.start()
    yield server
    server.stop()


@pytest.fixture
def state_url(postgres: pg.Postgres) -> str:
    return postgres.new_database()


def share(fleet: Fleet, url: str, extra: str = "") -> None:
    """The fleet on the shared state; support started a month ago (by the real clock the agents run on),
    so no check-up is due: the tests time the rounds, not WeasyPrint."""
    started = (date.today() - timedelta(days=30)).isoformat()
    fleet.config.write_text(re.sub(r'support_start = "[0-9-]+"', f'support_start = "{started}"', fleet.config.read_text())
                            .replace("settle_seconds = 0", f'settle_seconds = 0\nstate_url = "{url}"\n{extra}', 1))


def cli(fleet: Fleet, capsys: pytest.CaptureFixture[str], *args: str, at: datetime = AT) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(["--config", str(fleet.config), *args], clock=FixedClock(at))
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in args else out


def sql(postgres: pg.Postgres, url: str, statement: str) -> str:
    return postgres.sql(statement, url.rsplit("/", 1)[1])


def test_the_state_and_the_audit_chain_live_in_postgresql(fleet: Fleet, postgres: pg.Postgres, state_url: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(SITES[0])
    fleet.add(DemoSite("gone", "6.5.3", {}))
    fleet.web.down.add("gone")
    share(fleet, state_url)
    code, results = cli(fleet, capsys, "update", "--json")
    assert code == 1 and {r["site"]: r["status"] for r in results} == {"site0": "updated", "gone": "failed"}
    assert not (fleet.folder / "state/wpfleet.db").exists() and not (fleet.folder / "state/audit.jsonl").exists()
    # what the commands print comes from the rows
    assert sql(postgres, state_url, "SELECT status FROM site_status WHERE site = 'site0'") == "updated"
    opened = sql(postgres, state_url, "SELECT kind FROM tickets WHERE site = 'gone'")
    assert opened == "site_down"
    records = int(sql(postgres, state_url, "SELECT count(*) FROM audit"))
    code, audit = cli(fleet, capsys, "audit", "--json")
    assert len(audit) == records > 5 and [r["seq"] for r in audit] == list(range(1, records + 1))
    assert cli(fleet, capsys, "audit", "verify")[1] == f"audit log verifies: {records} records\n"
    # a row changed by hand is named
    changed = sql(postgres, state_url, "SELECT min(seq) FROM audit WHERE line LIKE '%\"site0\"%' AND seq > 2")
    sql(postgres, state_url, f"UPDATE audit SET line = replace(line, '\"site0\"', '\"site9\"') WHERE seq = {changed}")
    code, said = cli(fleet, capsys, "audit", "verify")
    assert code == 1 and said == f"audit log broken at seq {changed}: content does not match its hash\n"
    migrations = sql(postgres, state_url, "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")
    assert migrations == "1,2,3,4,5,6,7,8,9"
    from agent.state.migrations import MIGRATIONS, procrastinate_migrations

    sums = sql(postgres, state_url, "SELECT string_agg(checksum, ',' ORDER BY version) FROM schema_migrations")
    assert sums.split(",") == [m.checksum for m in MIGRATIONS]  # each file as applied
    assert sql(postgres, state_url, "SELECT level FROM schema_levels WHERE name = 'procrastinate'") == \
        procrastinate_migrations()[-1].name
    # a migration file edited after a database applied it is named: its change would never reach it
    sql(postgres, state_url, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 2")
    capsys.readouterr()
    main(["--config", str(fleet.config), "status", "--json"], clock=FixedClock(AT))
    assert "schema migration 2 (audit) changed since this database applied it" in capsys.readouterr().err


def test_concurrent_writers_keep_one_chain(fleet: Fleet, postgres: pg.Postgres, state_url: str) -> None:
    """Four processes append at once: one sequence, every record chained to the one before."""
    script = ("import sys; from pathlib import Path; from agent.audit import AuditLog; from agent.clock import SystemClock;"
              "from agent.state import State; s = State(Path(sys.argv[2]), sys.argv[1]);"
              "log = AuditLog(Path(sys.argv[2]), SystemClock(), sys.argv[3], db=s.db);"
              "[log.append('test', site='s', detail={'n': n}) for n in range(50)]")
    writers = [subprocess.Popen([sys.executable, "-c", script, state_url, str(fleet.folder / f"w{n}"), f"writer{n}"],
                                cwd=ROOT) for n in range(4)]
    assert [w.wait(120) for w in writers] == [0, 0, 0, 0]
    assert sql(postgres, state_url, "SELECT count(*), min(seq), max(seq) FROM audit") == "200|1|200"
    share(fleet, state_url)
    assert main(["--config", str(fleet.config), "audit", "verify"]) == 0
    actors = sql(postgres, state_url, "SELECT count(DISTINCT line::json->>'actor') FROM audit")
    assert actors == "4"


def test_state_copy_gives_the_same_tickets_audit_and_status(fleet: Fleet, state_url: str, postgres: pg.Postgres,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(SITES[0])
    fleet.add(DemoSite("gone", "6.5.3", {}))
    fleet.web.down.add("gone")
    assert main(["--config", str(fleet.config), "run", "--once"], clock=FixedClock(AT)) == 1  # a round, a watch
    before = {what: cli(fleet, capsys, what, "--json")[1] for what in ("tickets", "audit", "status")}
    assert before["tickets"] and len(before["audit"]) > 5
    code, said = cli(fleet, capsys, "state", "copy", "--to", state_url)
    assert code == 0, said
    assert "verified record by record: identical; audit chain there: verifies" in said
    share(fleet, state_url)
    after = {what: cli(fleet, capsys, what, "--json")[1] for what in ("tickets", "audit", "status")}
    assert after == before
    assert cli(fleet, capsys, "state", "copy", "--to", state_url)[0] == 2  # the state is there already
    alone = fleet.folder / "alone.toml"  # the SQLite state's config again: never copied over a state
    alone.write_text(fleet.config.read_text().replace(f'state_url = "{state_url}"\n', ""))
    capsys.readouterr()
    assert main(["--config", str(alone), "state", "copy", "--to", state_url]) == 1
    assert "already holds a state" in capsys.readouterr().out
    assert cli(fleet, capsys, "audit", "--json")[1] == before["audit"]

    # and back to one machine: PostgreSQL into an SQLite file, refused while an agent still beats there
    back = fleet.folder / "back"
    with Services.open(load(fleet.config), FixedClock(AT)) as services:
        services.state.agents.register("agent-x", "somewhere", 4242, AT)
    code, said = cli(fleet, capsys, "state", "copy", "--to", f"sqlite://{back}/wpfleet.db")
    assert code == 1 and "agents still work on this state (agent-x on somewhere, pid 4242)" in said
    assert not back.exists()
    sql(postgres, state_url, "UPDATE agents SET heartbeat_at = '2020-01-01T00:00:00+00:00'")  # it stopped beating
    code, said = cli(fleet, capsys, "state", "copy", "--to", f"sqlite://{back}/wpfleet.db")
    assert code == 0, said
    assert "verified record by record: identical; audit chain there: verifies" in said
    fleet.config.write_text(fleet.config.read_text().replace(f'state_url = "{state_url}"\n', "").replace(
        f'state_dir = "{fleet.folder / "state"}"', f'state_dir = "{back}"'))
    again = {what: cli(fleet, capsys, what, "--json")[1] for what in ("tickets", "audit", "status")}
    assert again == before
    assert cli(fleet, capsys, "audit", "verify")[1] == f"audit log verifies: {len(before['audit'])} records\n"


def test_state_copy_is_refused_while_a_daemon_runs_on_the_source(fleet: Fleet, state_url: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(SITES[0])
    assert main(["--config", str(fleet.config), "run", "--once"], clock=FixedClock(AT)) == 0
    held = single_instance(fleet.folder / "state")  # what a running daemon holds for its whole life
    try:
        code, said = cli(fleet, capsys, "state", "copy", "--to", state_url)
        assert code == 1 and "a daemon works on this state" in said
    finally:
        held.close()
    code, said = cli(fleet, capsys, "state", "copy", "--to", state_url)
    assert code == 0, said


def test_a_password_in_state_url_is_refused(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(SITES[0])
    share(fleet, "postgresql://wpfleet:hunter2@127.0.0.1/wpfleet")
    assert main(["--config", str(fleet.config), "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agent.state_url:") and "PGPASSWORD" in err and "hunter2" not in err


# real agents ---------------------------------------------------------------------------------------

def start_agent(fleet: Fleet, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    log = open(fleet.folder / f"{name}.log", "a")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "agent", "--config", str(fleet.config), "run"], cwd=ROOT,
                            stdout=log, stderr=log, text=True, env={**os.environ, "WPSIM_SLOW": "4", **(env or {})})


def start_agent_on(fleet: Fleet, name: str, config: str) -> subprocess.Popen[str]:
    """An agent on a config of its own (``<name>.toml``): its own way to the database, or its own
    view of the sites."""
    path = fleet.folder / f"{name}.toml"
    path.write_text(config)
    return subprocess.Popen([sys.executable, "-m", "agent", "--config", str(path), "run"], cwd=ROOT,
                            stdout=open(fleet.folder / f"{name}.log", "a"), stderr=subprocess.STDOUT, text=True)  # noqa: SIM115


def through(fleet: Fleet, relay: pg.Cut, postgres: pg.Postgres, state_url: str) -> str:
    """The fleet's config with the database reached through ``relay``."""
    return fleet.config.read_text().replace(state_url, relay.url(postgres, state_url.rsplit("/", 1)[1]))


def wait_for_round(fleet: Fleet, what: str) -> None:
    """Every site of ``SITES`` updated and the site named "gone" failed, as ``status`` says (each
    status kept as last seen: what it was when the round ended, should it not end)."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update({s["site"]: s["status"] for s in statuses(fleet)["sites"]})
        return all(seen.get(spec.name) == "updated" for spec in SITES) and seen.get("gone") == "failed"
    try:
        wait_for(done, timeout=180, what=what)
    except AssertionError:
        raise AssertionError(f"the round did not end: {seen}") from None


def stop_agents(*agents: subprocess.Popen[str]) -> None:
    for agent in agents:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
    for agent in agents:
        try:
            agent.wait(90)
        except subprocess.TimeoutExpired:
            agent.kill()


def statuses(fleet: Fleet) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "agent", "--config", str(fleet.config), "status", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def calls(fleet: Fleet, root: Path, command: str) -> int:
    return sum(1 for line in fleet.wp_calls(root) if f" {command} " in f" {line} ")


@pytest.mark.integration
def test_two_agents_one_round_every_site_updated_once_every_ticket_sent_once(
        fleet: Fleet, sshd: sshd_mod.SSHServer, state_url: str) -> None:
    roots = {spec.name: fleet.add(spec, ssh=sshd) for spec in SITES}
    fleet.add(DemoSite("gone", "6.5.3", {}), ssh=sshd)
    fleet.web.down.add("gone")
    share(fleet, state_url, "watch_interval = 2\nupdate_interval = 3600\ninventory_interval = 3600\n")
    agents = [start_agent(fleet, "one"), start_agent(fleet, "two")]
    try:
        wait_for_round(fleet, "the round on both agents")
        report = statuses(fleet)
        assert len(report["agents"]) == 2 and {a["pid"] for a in report["agents"]} == {a.pid for a in agents}
        wait_for(lambda: statuses(fleet)["watch"]["down"] == ["gone"], timeout=30, what="the watch")
        wait_for(lambda: statuses(fleet)["deliveries_waiting"] == 0, timeout=30, what="the deliveries")
    finally:
        stop_agents(*agents)
    for name, root in roots.items():  # exactly once, as the hosts saw it
        assert calls(fleet, root, "core update") == 1, name
        assert calls(fleet, root, "plugin update") == 2, name  # akismet and contact-form-7, once each
        assert plugin_version(root, "akismet") == "5.4.0"
    events = [(t["id"], t["event"], t["event_seq"]) for t in fleet.sent_tickets()]
    opened = [e[0] for e in events if e[1] == "opened"]
    ledger = subprocess.run([sys.executable, "-m", "agent", "--config", str(fleet.config), "tickets", "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    tickets = json.loads(ledger.stdout)
    assert sorted(opened) == sorted(t["id"] for t in tickets)  # every ticket reached the sink, once
    assert {(t["site"], t["kind"]) for t in tickets} >= {("gone", "site_down")}
    assert len({e[2] for e in events}) == len(events)  # no delivery twice
    logs = [(fleet.folder / f"{n}.log").read_text() for n in ("one", "two")]
    assert all("Traceback" not in text for text in logs), logs


@pytest.mark.integration
def test_kill_9_of_the_agent_holding_a_site_the_other_finishes_it(
        fleet: Fleet, sshd: sshd_mod.SSHServer, state_url: str, postgres: pg.Postgres) -> None:
    root = fleet.add(SITES[0], ssh=sshd)
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "slow"}})
    share(fleet, state_url, "watch_interval = 2\nupdate_interval = 3600\n")
    agents = {"one": start_agent(fleet, "one"), "two": start_agent(fleet, "two")}
    try:
        def holder() -> str | None:
            if not (root / ".maintenance").exists() or "plugin update contact-form-7" not in fleet.calls.read_text():
                return None
            return next((a["pid"] for a in statuses(fleet).get("agents", []) if "working on site0" in a["doing"]),
                        None)
        wait_for(lambda: holder() is not None, timeout=120, what="the slow update under way")
        pid = holder()
        victim = next(name for name, agent in agents.items() if agent.pid == pid)
        os.kill(pid, signal.SIGKILL)  # mid-update: the site in maintenance mode, the journal open
        agents[victim].wait(10)

        def finished() -> bool:
            sites = {s["site"]: s for s in statuses(fleet).get("sites", [])}
            return sites.get("site0", {}).get("status") == "updated" and not (root / ".maintenance").exists()
        wait_for(finished, timeout=180, what="the other agent to settle and finish the site")
        assert plugin_version(root, "contact-form-7") == "5.9.8" and plugin_version(root, "akismet") == "5.4.0"
        assert sql(postgres, state_url, "SELECT count(*) FROM journal") == "0"
        assert requests.get(fleet.web.url("site0"), timeout=10).status_code == 200
        records = [json.loads(line) for line in sql(postgres, state_url,
                                                    "SELECT line FROM audit ORDER BY seq").splitlines()]
        assert any(r["action"] == "reconcile" and r["site"] == "site0" for r in records)
        # its maintenance mode was the stopped run's, being settled: no one was paged for an outage
        assert not [t for t in fleet.sent_tickets() if t["kind"] == "site_down"]
    finally:
        stop_agents(*agents.values())
    assert main(["--config", str(fleet.config), "audit", "verify"]) == 0


def test_a_dead_agents_job_gives_way_to_the_same_job_queued_since(postgres: pg.Postgres, state_url: str) -> None:
    """An agent died holding site0's update job; the next round queued site0's update again (the
    queueing lock is free while a job runs). Taking the dead agent's job over must not leave it
    holding the site's lock: the waiting job is the one that runs."""
    import asyncio

    import procrastinate

    from agent.cluster import take_over
    from agent.state.postgres import PostgresDatabase

    PostgresDatabase(state_url).close()  # the agent's migrations: procrastinate's schema with them

    async def scenario() -> tuple[int, int | None, list[int]]:
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=state_url))
        task = app.task(name="wpfleet.site", queue="wpfleet")(lambda site: None)
        async with app.open_async():
            site0 = task.configure(lock="site:site0", queueing_lock="update:site0")
            first = await site0.defer_async(site="site0")
            dead = await app.job_manager.register_worker()
            held = await app.job_manager.fetch_job(["wpfleet"], dead)
            assert held is not None and held.id == first
            waiting = await site0.defer_async(site="site0")  # the next round's
            sql(postgres, state_url, f"UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute' "
                                     f"WHERE id = {dead}")
            stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=10))
            for job in stalled:
                await take_over(app, job)
            alive = await app.job_manager.register_worker()
            taken = await app.job_manager.fetch_job(["wpfleet"], alive)
            return waiting, taken.id if taken else None, [job.id for job in stalled]

    waiting, taken, stalled = asyncio.run(scenario())
    assert stalled == [waiting - 1] and taken == waiting
    assert sql(postgres, state_url, f"SELECT status FROM procrastinate_jobs WHERE id = {waiting - 1}") == "failed"


@pytest.mark.integration
def test_the_watch_leader_killed_a_down_site_still_gets_its_emergency(
        fleet: Fleet, sshd: sshd_mod.SSHServer, state_url: str) -> None:
    fleet.add(SITES[0], ssh=sshd)
    interval = 3
    share(fleet, state_url, f"watch_interval = {interval}\nupdate_interval = 3600\n")
    agents = {"one": start_agent(fleet, "one"), "two": start_agent(fleet, "two")}
    try:
        def leader() -> int | None:
            return next((a["pid"] for a in statuses(fleet).get("agents", []) if a["leads_watch"]), None)
        # the first start's round done: a run holding the site when it goes down would make it "busy"
        wait_for(lambda: {s["site"]: s["status"] for s in statuses(fleet)["sites"]}.get("site0") == "updated",
                 timeout=60, what="the first round")
        wait_for(lambda: leader() is not None and statuses(fleet)["watch"]["last_tick_at"] is not None, timeout=60,
                 what="a leader's first tick")
        pid = leader()
        fleet.web.down.add("site0")
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()

        def emergency() -> bool:
            return any(t["kind"] == "site_down" and t["event"] == "opened" for t in fleet.sent_tickets())
        wait_for(emergency, timeout=60, what="the emergency from the new leader")
        took = time.monotonic() - killed
        assert took <= 2 * interval + 3, took  # one interval lost at most, then the tick and its confirmation
        survivor = next(agent for agent in agents.values() if agent.pid != pid)
        wait_for(lambda: leader() == survivor.pid, timeout=20, what="the survivor named leader")
    finally:
        stop_agents(*agents.values())


@pytest.mark.integration
def test_an_agent_cut_off_from_the_database_mid_update_starts_no_work(
        fleet: Fleet, sshd: sshd_mod.SSHServer, postgres: pg.Postgres, state_url: str) -> None:
    """Agent one reaches the database through a relay that is cut while it is updating a site: it
    takes no further step and no job, gives up the watch; agent two takes the site's job over (with
    the next round's job for the same site already queued), settles the site and finishes it."""
    root = fleet.add(SITES[0], ssh=sshd)
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "slow", "slow_seconds": 12}})
    relay = pg.Cut(postgres.port)
    share(fleet, state_url, "watch_interval = 2\nupdate_interval = 10\nretention_interval = 3600\n"
                            "checkup_interval = 3600\ninventory_interval = 3600\n")
    one = start_agent_on(fleet, "one", through(fleet, relay, postgres, state_url))
    agents = [one]
    try:
        wait_for(lambda: (root / ".maintenance").exists() and "plugin update contact-form-7" in fleet.calls.read_text(),
                 timeout=90, what="agent one's slow update under way")
        agents.append(start_agent(fleet, "two"))
        wait_for(lambda: len(statuses(fleet)["agents"]) == 2, timeout=30, what="agent two registered")
        assert (root / ".maintenance").exists()  # agent one is still inside the update's step
        relay.sever(postgres)
        severed_at = (fleet.folder / "one.log").stat().st_size

        def finished() -> bool:  # as the host and the state show it: the next round's run may follow at once
            site = {x["site"]: x for x in statuses(fleet)["sites"]}["site0"]
            return (site["status"] in ("updated", "unchanged") and not (root / ".maintenance").exists()
                    and plugin_version(root, "contact-form-7") == "5.9.8"
                    and sql(postgres, state_url, "SELECT count(*) FROM journal") == "0")
        wait_for(finished, timeout=120, what="agent two to settle and finish the site")
        assert plugin_version(root, "contact-form-7") == "5.9.8" and plugin_version(root, "akismet") == "5.4.0"
        assert sql(postgres, state_url, "SELECT count(*) FROM journal") == "0"
        assert requests.get(fleet.web.url("site0"), timeout=10).status_code == 200
        two = agents[1].pid
        wait_for(lambda: any(a["pid"] == two and a["leads_watch"] for a in statuses(fleet)["agents"]),
                 timeout=60, what="agent two leading the watch")
        def gone() -> bool:  # what agent one believes last (a beat may have failed once already, on a loaded machine)
            said = (fleet.folder / "one.log").read_text()
            return said.rfind("starts no work") > max(said.rfind("answers again"), -1)
        wait_for(gone, timeout=60, what="agent one to find the database gone")  # its beat gives up after the pool's 10 s
        after = (fleet.folder / "one.log").read_text()[severed_at:]
        assert "Starting job" not in after, after[-3000:]
        assert "Traceback" not in after.split("SIGTERM")[0], after[-3000:]  # one line says why the run stopped
        assert one.poll() is None  # it waits for the database, alive
        stopping = time.monotonic()
        one.send_signal(signal.SIGTERM)
        assert one.wait(60) == 0 and time.monotonic() - stopping < 30  # and stops without it
    finally:
        stop_agents(*agents)


@pytest.mark.integration
def test_a_database_blip_longer_than_the_stall_hands_over_no_job_still_running(
        fleet: Fleet, sshd: sshd_mod.SSHServer, postgres: pg.Postgres, state_url: str) -> None:
    """Agent one's connections to the database go silent for 16 s (a relay paused) while it is inside a
    35-second plugin update: its job looks stalled to agent two, whose scheduler looks at the site's
    lock on the host, sees the run still holding it, and hands nothing over. Resumed, agent one ends
    the run and records it: the update ran once, one job, no error anywhere."""
    root = fleet.add(SITES[0], ssh=sshd)
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "slow", "slow_seconds": 35}})
    relay = pg.Cut(postgres.port)
    share(fleet, state_url, "watch_interval = 2\nupdate_interval = 3600\nretention_interval = 3600\n"
                            "checkup_interval = 3600\ninventory_interval = 3600\n")
    one = start_agent_on(fleet, "one", through(fleet, relay, postgres, state_url))
    agents = [one]
    try:
        wait_for(lambda: fleet.calls.exists() and "plugin update contact-form-7" in fleet.calls.read_text(),
                 timeout=90, what="agent one's slow update under way")
        agents.append(start_agent(fleet, "two"))
        wait_for(lambda: len(statuses(fleet)["agents"]) == 2, timeout=30, what="agent two registered")
        relay.pause()
        time.sleep(16)  # longer than procrastinate's stall (10 s): its worker's beat is silent meanwhile
        relay.resume()
        wait_for(lambda: {x["site"]: x["status"] for x in statuses(fleet)["sites"]}.get("site0") == "updated"
                 and not (root / ".maintenance").exists(), timeout=90, what="agent one to end its run")
        two = (fleet.folder / "two.log").read_text()
        assert "not handed over while it runs" in two, two[-3000:]
        assert "was with an agent that stopped beating" not in two, two[-3000:]
        assert "site0: busy" not in two, two[-3000:]  # agent two never ran the site's job beside it
        assert calls(fleet, root, "plugin update") == 2  # akismet and contact-form-7, once each
        assert plugin_version(root, "contact-form-7") == "5.9.8"
        assert sql(postgres, state_url, "SELECT count(*) FROM journal") == "0"
        assert sql(postgres, state_url, "SELECT count(*) FROM procrastinate_jobs "
                                        "WHERE task_name = 'wpfleet.site' AND status <> 'succeeded'") == "0"
    finally:
        stop_agents(*agents)
    logs = [(fleet.folder / f"{n}.log").read_text() for n in ("one", "two")]
    assert all("Traceback" not in text and "ERROR Job" not in text for text in logs), logs


@pytest.mark.integration
def test_a_database_restart_mid_round_loses_no_site_and_sends_no_ticket_twice(
        fleet: Fleet, sshd: sshd_mod.SSHServer, postgres: pg.Postgres, state_url: str) -> None:
    """PostgreSQL restarts (every session ended, down 3 s: a failover, a minor upgrade) while two agents
    are inside an update round with slow steps: every site is updated exactly once and left out of
    maintenance, both agents keep running, one leads the watch again, and the site that is down gets
    one emergency ticket."""
    roots = {spec.name: fleet.add(spec, ssh=sshd) for spec in SITES}
    fleet.add(DemoSite("gone", "6.5.3", {}), ssh=sshd)
    fleet.web.down.add("gone")
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "slow", "slow_seconds": 6}})
    share(fleet, state_url, "watch_interval = 2\nupdate_interval = 3600\ninventory_interval = 3600\n")
    agents = [start_agent(fleet, "one"), start_agent(fleet, "two")]
    try:
        wait_for(lambda: fleet.calls.exists() and "plugin update contact-form-7" in fleet.calls.read_text(), timeout=120,
                 what="the round's slow steps under way")
        postgres.restart(down_for=3)
        wait_for_round(fleet, "the round after the restart")
        wait_for(lambda: any(a["leads_watch"] for a in statuses(fleet)["agents"])
                 and statuses(fleet)["watch"]["down"] == ["gone"], timeout=60, what="a leader watching again")
        wait_for(lambda: statuses(fleet)["deliveries_waiting"] == 0, timeout=60, what="the deliveries")
        assert [agent.poll() for agent in agents] == [None, None]  # neither agent gave up
    finally:
        stop_agents(*agents)
    for name, root in roots.items():  # exactly once, as the hosts saw it
        assert calls(fleet, root, "core update") == 1, name
        assert calls(fleet, root, "plugin update") == 2, name
        assert plugin_version(root, "contact-form-7") == "5.9.8" and not (root / ".maintenance").exists(), name
    assert sql(postgres, state_url, "SELECT count(*) FROM journal") == "0"
    events = [(t["id"], t["kind"], t["event"], t["event_seq"]) for t in fleet.sent_tickets()]
    assert [e[1] for e in events if e[2] == "opened" and e[1] == "site_down"] == ["site_down"], events
    assert len({e[3] for e in events}) == len(events), events  # no delivery twice
    logs = [(fleet.folder / f"{n}.log").read_text() for n in ("one", "two")]
    assert all("Traceback" not in text for text in logs), logs


@pytest.mark.integration
def test_a_silent_connection_or_a_frozen_leader_loses_the_watch_within_its_lease(
        fleet: Fleet, postgres: pg.Postgres, state_url: str) -> None:
    """Agent one leads the watch through a relay that is then paused (connections open, nothing passes):
    agent two takes the lead once the lease, timed by the database, runs out, and agent one says it no
    longer leads; resumed, it does not lead again. Then agent two is frozen (SIGSTOP): agent one takes
    the lead back within the lease, and two, thawed, stands down. A site down meanwhile still gets its
    emergency from whoever leads."""
    from agent.state.lead import LEASE

    fleet.add(SITES[0])
    share(fleet, state_url, "watch_interval = 2\nupdate_interval = 3600\n"
                            "inventory_interval = 3600\nretention_interval = 3600\ncheckup_interval = 3600\n")
    relay = pg.Cut(postgres.port)
    one = start_agent_on(fleet, "one", through(fleet, relay, postgres, state_url))
    agents = [one]

    def leader() -> int | None:
        return next((a["pid"] for a in statuses(fleet)["agents"] if a["leads_watch"]), None)

    try:
        wait_for(lambda: leader() == one.pid, timeout=60, what="agent one leading the watch")
        # the first start's round done: a run cut off with its agent would make the site "being settled"
        wait_for(lambda: {s["site"]: s["status"] for s in statuses(fleet)["sites"]}.get("site0") == "updated",
                 timeout=90, what="the first round")
        agents.append(two := start_agent(fleet, "two"))
        wait_for(lambda: len(statuses(fleet)["agents"]) == 2, timeout=30, what="agent two registered")
        assert leader() == one.pid
        relay.pause()
        paused = time.monotonic()
        wait_for(lambda: leader() == two.pid, timeout=LEASE + 15, what="agent two taking the lead")
        assert time.monotonic() - paused <= LEASE + 5
        fleet.web.down.add("site0")
        wait_for(lambda: any(t["kind"] == "site_down" and t["event"] == "opened" for t in fleet.sent_tickets()),
                 timeout=30, what="the emergency from the new leader")
        wait_for(lambda: "no longer leads the watch" in (fleet.folder / "one.log").read_text(), timeout=30,
                 what="agent one to say it lost the lead")
        relay.resume()
        time.sleep(6)
        assert leader() == two.pid  # the lease is agent two's now: one does not take it back
        leading = [a for a in statuses(fleet)["agents"] if a["leads_watch"]]
        assert [a["pid"] for a in leading] == [two.pid]

        os.kill(two.pid, signal.SIGSTOP)  # frozen: its session stays, its beats and renewals stop
        frozen = time.monotonic()
        wait_for(lambda: leader() == one.pid, timeout=LEASE + 15, what="agent one taking the lead back")
        assert time.monotonic() - frozen <= LEASE + 5
        gone = {a["pid"]: a for a in statuses(fleet)["agents"]}[two.pid]
        assert not gone["alive"] and not gone["leads_watch"] and gone["watches"] == 0
        os.kill(two.pid, signal.SIGCONT)
        wait_for(lambda: "no longer leads the watch" in (fleet.folder / "two.log").read_text(), timeout=30,
                 what="agent two, thawed, to stand down")
        time.sleep(4)
        assert [a["pid"] for a in statuses(fleet)["agents"] if a["leads_watch"]] == [one.pid]
    finally:
        with contextlib.suppress(ProcessLookupError):
            for agent in agents:
                os.kill(agent.pid, signal.SIGCONT)
        relay.resume()
        stop_agents(*agents)


@pytest.mark.integration
def test_the_watch_is_shared_and_a_failure_is_confirmed_from_a_second_agent(fleet: Fleet, state_url: str) -> None:
    """Three agents share the watch of 30 sites: their parts cover the fleet once. Agent one reads
    every site through a dead address (its own network is the trouble): the sites its update round
    finds down, and its part of the watch, fail from it, the others find each of those sites up, and
    no one is paged — while the one site really down gets one emergency. Killed, an agent's part is read by the others within seconds (its session is gone); the
    last agent left confirms by itself, and its broken view now pages for every site."""
    from agent.state.share import parts

    names = [f"w{n:02d}" for n in range(30)]
    for name in names:
        fleet.add(DemoSite(name, "6.6.2", {}))
    share(fleet, state_url, "watch_interval = 2\nupdate_interval = 3600\ninventory_interval = 3600\n"
                            "retention_interval = 3600\ncheckup_interval = 3600\n")
    dead = sshd_mod.free_port()  # nothing listens there: every read from agent one is refused
    blind = re.sub(r'^url = "http://127\.0\.0\.1:\d+/', f'url = "http://127.0.0.1:{dead}/', fleet.config.read_text(),
                   flags=re.M)
    # agents two and three take one job at a time: agent one, blind, runs most of the first update round
    fleet.config.write_text(fleet.config.read_text().replace("concurrency = 8", "concurrency = 1", 1))
    agents = [start_agent(fleet, "two")]

    def opened() -> list[str]:
        return [t["site"] for t in fleet.sent_tickets() if t["kind"] == "site_down" and t["event"] == "opened"]

    try:
        wait_for(lambda: any(a["alive"] for a in statuses(fleet)["agents"]), timeout=30, what="agent two")
        agents.insert(0, start_agent_on(fleet, "one", blind))
        agents.append(start_agent(fleet, "three"))
        by_pid = {agent.pid: name for agent, name in zip(agents, ("one", "two", "three"), strict=True)}
        wait_for(lambda: all(s["status"] for s in statuses(fleet)["sites"]), timeout=120, what="the first rounds")
        # the sites agent one's round found down (its own network) were confirmed up elsewhere: no page
        found = set(re.findall(r"(w\d\d) is down as this agent's update round sees it",
                               (fleet.folder / "one.log").read_text()))
        assert found, "agent one's update round ran no site"
        def shared() -> bool:
            alive = [a for a in statuses(fleet)["agents"] if a["alive"]]
            return len(alive) == 3 and sum(a["watches"] for a in alive) == 30 and all(a["watches"] for a in alive)
        wait_for(shared, timeout=90, what="three agents sharing the watch")
        ids = {by_pid[a["pid"]]: a["id"] for a in statuses(fleet)["agents"]}
        part = parts(names, list(ids.values()))
        assert sorted(sum(part.values(), [])) == names  # each site in one part
        assert opened() == []
        fleet.web.down.add("w00")
        wait_for(lambda: opened() == ["w00"], timeout=30, what="the emergency for the site really down")
        time.sleep(8)  # four ticks: agent one's part has failed from it again and again
        assert opened() == ["w00"]
        logs = {name: (fleet.folder / f"{name}.log").read_text() for name in ("one", "two", "three")}
        asked = set(re.findall(r"(w\d\d) fails from this agent .*: asked agent", logs["one"]))
        assert asked >= set(part[ids["one"]]) - {"w00"}, (asked, part[ids["one"]])
        answered = set(re.findall(r"(w\d\d) fails as agent \S+ reads it .* but answers from this agent",
                                  logs["two"] + logs["three"]))
        assert answered >= (set(part[ids["one"]]) | found) - {"w00"}

        # agent two killed: its part (a site of it down from now on) is read and paged within seconds
        gone = sorted(set(part[ids["two"]]) - {"w00"})[0]
        two = agents[1]
        fleet.web.down.add(gone)
        os.kill(two.pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: gone in opened(), timeout=30, what="the emergency for a site of the killed agent's part")
        took = time.monotonic() - killed
        assert took < 8, took  # not the 10 s a silent beat takes to count: the session closed with the process
        fleet.web.down.discard(gone)

        # agent three killed too: agent one is alone, confirms by itself, and its own blindness pages
        os.kill(agents[2].pid, signal.SIGKILL)
        wait_for(lambda: set(opened()) >= set(names) - {gone}, timeout=60, what="agent one paging alone")
    finally:
        stop_agents(*agents)
    assert "Traceback" not in (fleet.folder / "one.log").read_text()


SKEWED = Path(__file__).resolve().parent / "skew"


@pytest.mark.integration
def test_agents_whose_clocks_differ_claim_by_the_databases_clock(fleet: Fleet, state_url: str) -> None:
    """Agent one's machine runs ten minutes ahead, agent two's on time: each round is claimed once,
    by the database's clock — the agent ahead is not "past due" for the other, nor the other "early"
    for it — and when the one ahead is killed, the other leads the watch and ticks at once."""
    fleet.add(SITES[0])
    share(fleet, state_url, "watch_interval = 2\nupdate_interval = 3600\ninventory_interval = 3600\n"
                            "retention_interval = 3600\ncheckup_interval = 3600\n")
    ahead = start_agent(fleet, "one", {"PYTHONPATH": str(SKEWED), "WPFLEET_TEST_SKEW": "600"})
    agents = [ahead]
    try:
        wait_for(lambda: "job inventory done" in (fleet.folder / "one.log").read_text(), timeout=90,
                 what="the first inventory")
        agents.append(on_time := start_agent(fleet, "two"))
        wait_for(lambda: len(statuses(fleet)["agents"]) == 2, timeout=30, what="agent two registered")
        started = {a["pid"]: datetime.fromisoformat(a["started_at"]) for a in statuses(fleet)["agents"]}
        assert started[ahead.pid] - started[on_time.pid] > timedelta(minutes=9)  # its own clock, ten minutes on
        time.sleep(12)  # a few claims' worth: agent two must not find the rounds due again
        logs = (fleet.folder / "one.log").read_text() + (fleet.folder / "two.log").read_text()
        assert logs.count("job inventory done") == 1, logs[-3000:]
        assert logs.count("job retention done") == 1
        leader = next(a["pid"] for a in statuses(fleet)["agents"] if a["leads_watch"])
        assert leader == ahead.pid
        os.kill(ahead.pid, signal.SIGKILL)
        killed = time.monotonic()
        before = (fleet.folder / "two.log").read_text().count("job watch done")
        wait_for(lambda: (fleet.folder / "two.log").read_text().count("job watch done") > before, timeout=30,
                 what="agent two's first watch tick")
        assert time.monotonic() - killed < 10  # its session gone: the lead at once, the tick due by one clock
        assert next(a["pid"] for a in statuses(fleet)["agents"] if a["leads_watch"]) == on_time.pid
    finally:
        stop_agents(*agents)
