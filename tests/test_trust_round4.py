"""Trust, fourth round (issue 28): a clock that steps back,
configs that cannot hurt (one block per WordPress root, backups that keep the media), a ticket file
a full disk cut short, and one contract for every change (migrate included). Each checks the state,
the files or the exit code, not the agent's word."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import demo
from agent.cli import main
from agent.clock import FixedClock
from agent.config import load
from agent.daemon import Daemon
from agent.demo import DemoSite
from agent.state import State
from agent.tickets import FileSink, delivery_id
from tests import sshd as sshd_mod
from tests.conftest import Fleet

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def test_a_clock_stepped_back_makes_every_job_due_now(fleet: Fleet) -> None:
    fleet.add(DemoSite("acme", "6.5.3", {}))
    ahead = Daemon(load(fleet.config), FixedClock(NOW + timedelta(minutes=10)))  # a clock 10 minutes fast
    try:
        ahead.run_job("watch")
    finally:
        ahead.close()
    daemon = Daemon(load(fleet.config), FixedClock(NOW))  # NTP stepped it back (or a VM was restored)
    try:
        assert daemon.until_due(("watch",)) == {"watch": 0.0}  # not the old future: 10 min and an interval
        assert "watch" in daemon.due()
        assert daemon.services.state.jobs.claim("watch", NOW, 60.0, 1.0)  # several agents: claimed now too
        assert not daemon.services.state.jobs.claim("watch", NOW + timedelta(seconds=5), 60.0, 1.0)
    finally:
        daemon.close()


def config_with(fleet: Fleet, second: str) -> Path:
    root = fleet.add(DemoSite("acme", "6.5.3", {}))
    fleet.blocks.append(second.format(root=root, wp=fleet.wp, backups=fleet.folder / "backups"))
    fleet.write()
    return fleet.config


def check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--config", str(path), "check-config"])
    return code, capsys.readouterr().err


def test_two_blocks_on_one_wordpress_root_are_refused(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_with(fleet, '[[sites]]\nname = "acme-again"\nurl = "http://127.0.0.1:1/acme/"\npath = "{root}/"\n'
                              'wp_cli = "{wp}"\nbackup_dir = "{backups}/acme-again"\n')
    code, said = check_config(path, capsys)
    assert code == 2
    assert "sites[1].path:" in said and "is also site 'acme''s root: one site block per WordPress root" in said


@pytest.mark.parametrize("inside", ["{root}/wp-content/uploads", "{root}/wp-content/uploads/backups",
                                    "{root}/wp-content", "{root}"])
def test_a_backup_dir_that_would_leave_the_media_out_is_refused(fleet: Fleet, capsys: pytest.CaptureFixture[str],
                                                                inside: str) -> None:
    root = fleet.add(DemoSite("acme", "6.5.3", {}))
    fleet.blocks[-1] = fleet.blocks[-1].replace(f'backup_dir = "{fleet.folder / "backups" / "acme"}"',
                                                f'backup_dir = "{inside.format(root=root)}"')
    fleet.write()
    code, said = check_config(fleet.config, capsys)
    assert code == 2 and "sites[0]: " in said and "would leave the site's media out" in said, said


def test_a_ticket_file_cut_short_by_a_full_disk_is_read_past(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    first = {"id": "WPF-1", "event_seq": 1, "event": "opened", "site": "acme"}
    path.write_text(json.dumps(first) + "\n" + '{"id": "WPF-2", "event_seq": 2, "eve')  # the disk filled up here
    sink = FileSink(path)
    second = {"id": "WPF-2", "event_seq": 2, "event": "opened", "site": "acme"}
    sink.send(second, maybe_sent=True)  # the delivery that was cut: asked again, maybe sent
    sink.send({"id": "WPF-3", "event_seq": 3, "event": "opened", "site": "acme"})
    lines = path.read_text().splitlines()
    assert lines[1] == '{"id": "WPF-2", "event_seq": 2, "eve'  # kept as it was, and passed over
    assert [delivery_id(json.loads(line)) for line in lines[2:]] == ["WPF-2:2", "WPF-3:3"]
    sink.send(second, maybe_sent=True)  # a retry that was in fact delivered: not written twice
    assert len(path.read_text().splitlines()) == 4


def test_migrate_is_refused_when_support_has_ended(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    root = fleet.add(DemoSite("acme", "6.5.5", {"akismet": ("5.3.0", True)}))
    fleet.write(contract=demo.CONTRACT.replace('support_until = "2028-02-29"', 'support_until = "2026-10-31"'))
    stored = (root / "wp-content/database/wpsim.json").read_text()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--config", str(fleet.config), "migrate", "--site", "acme", "--to-url",
                     fleet.web.url("acme-live"), "--approve", "ticket WPF-1 by the client", "--json"],
                    clock=FixedClock(NOW))
    result = json.loads(out.getvalue())
    assert code != 0 and result["status"] == "failed"
    assert "support ended" in result["error"] and "not offered" in result["error"], result["error"]
    assert (root / "wp-content/database/wpsim.json").read_text() == stored  # the host: nothing changed
    assert not (fleet.folder / "backups/acme").exists() or not any((fleet.folder / "backups/acme").iterdir())
    with State(fleet.folder / "state") as state:
        assert state.journal.open("acme") is None


def test_a_journal_whose_backup_is_gone_can_be_discarded_with_its_trail(fleet: Fleet, sshd: sshd_mod.SSHServer,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = fleet.add(DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True)}), ssh=sshd)
    with State(fleet.folder / "state") as state:  # a run cut off mid-update; its backup later removed by hand
        state.journal.begin("acme", "update", "run-cut", NOW, "20261101T000000Z-gone")
    main_file = demo.write_plugin(root, "akismet", "5.3.0", "wpsim_boom(); // wpsim:fatal\n")  # broken between steps
    (root / ".maintenance").write_text("<?php $upgrading = 0;")
    for minute in (0, 1):  # stuck: the site cannot be settled without the backup, run after run
        assert main(["--config", str(fleet.config), "run", "--once"], clock=FixedClock(NOW + timedelta(minutes=minute))) == 1
    assert "which is gone" in capsys.readouterr().err
    code = main(["--config", str(fleet.config), "journal", "discard", "--site", "acme", "--reason",
                 "backup lost with the old disk"], clock=FixedClock(NOW))
    said = capsys.readouterr().out
    assert code == 0 and "its backup 20261101T000000Z-gone is gone from the host" in said
    assert not (root / ".maintenance").exists()
    with State(fleet.folder / "state") as state:
        assert state.journal.open("acme") is None
    record = [r for r in fleet.audit_records() if r["action"] == "journal_discarded"][-1]
    assert record["detail"]["backup_gone"] is True and record["detail"]["reason"] == "backup lost with the old disk"
    demo.write_plugin(root, "akismet", "5.3.0")  # ops mend the site by hand (or restore an older backup)
    assert main_file.read_text().count("wpsim_boom") == 0
    assert main(["--config", str(fleet.config), "run", "--once"], clock=FixedClock(NOW + timedelta(minutes=2))) == 0


def test_a_journal_whose_backup_is_there_is_settled_not_discarded(fleet: Fleet,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(DemoSite("acme", "6.5.3", {}))
    assert main(["--config", str(fleet.config), "backup", "--site", "acme"], clock=FixedClock(NOW)) == 0
    backup_id = next(p.name for p in (fleet.folder / "backups/acme").iterdir() if p.name[0].isdigit())
    with State(fleet.folder / "state") as state:
        state.journal.begin("acme", "update", "run-cut", NOW, backup_id)
    capsys.readouterr()
    code = main(["--config", str(fleet.config), "journal", "discard", "--site", "acme", "--reason", "why not"],
                clock=FixedClock(NOW))
    assert code == 2 and "its next run settles it" in capsys.readouterr().err
    with State(fleet.folder / "state") as state:
        assert state.journal.open("acme") is not None


def test_a_backup_whose_archive_does_not_read_back_is_a_failed_backup(fleet: Fleet, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's tar writes a broken archive (hashed as written: its checksum matches); the backup
    is read back before the update relies on it, fails, and the release is never touched."""
    root = fleet.add(DemoSite("acme", "6.5.3", {"contact-form-7": ("5.9.3", True)}))
    fake = tmp_path / "fakebin"
    fake.mkdir()
    real_tar = next(p for p in ("/usr/bin/tar", "/bin/tar") if Path(p).exists())
    (fake / "tar").write_text(f'#!/bin/sh\n{real_tar} "$@" | head -c 64\n')  # cut short, exit 0
    (fake / "tar").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{__import__('os').environ['PATH']}")
    result = fleet.update_result(NOW)
    assert result["status"] == "failed" and "reading the archive back failed" in result["error"], result
    from tests.conftest import plugin_version
    assert plugin_version(root, "contact-form-7") == "5.9.3"  # nothing changed without a backup
    backups = fleet.folder / "backups/acme"
    assert not backups.exists() or not [p for p in backups.iterdir() if p.name[0].isdigit()]  # nothing half left
    with State(fleet.folder / "state") as state:
        assert not state.history.failed_releases("acme")  # the release is not blamed


def test_a_backup_cut_off_by_a_killed_agent_is_removed_under_the_lock_and_said(fleet: Fleet,
                                                                              sshd: sshd_mod.SSHServer) -> None:
    fleet.add(DemoSite("acme", "6.5.3", {}), ssh=sshd)
    left = fleet.folder / "backups/acme/20261127T230000Z"  # db.sql and the archive whole, the manifest never written
    left.mkdir(parents=True)
    (left / "db.sql").write_text("-- a whole dump of the client's data\n")
    (left / "files.tar.gz").write_bytes(b"\x1f\x8b" + b"\0" * 64)
    assert main(["--config", str(fleet.config), "backup", "--site", "acme"], clock=FixedClock(NOW)) == 0
    assert not left.exists()  # gone from the host
    kept = [p.name for p in (fleet.folder / "backups/acme").iterdir() if p.name[0].isdigit()]
    assert kept == ["20261128T060000Z"] and (fleet.folder / "backups/acme" / kept[0] / "manifest.json").exists()
    record = [r for r in fleet.audit_records() if r["action"] == "backup_partial_removed"]
    assert [r["detail"]["backup_id"] for r in record] == ["20261127T230000Z"]


def test_two_blocks_on_one_root_through_a_symlink_never_run_at_once(fleet: Fleet, sshd: sshd_mod.SSHServer) -> None:
    """Another path to the same WordPress root (a symlink) passes the config's check; the run's own
    claim on the root as the host resolves it keeps the two blocks from working on it together."""
    from agent.services import Services
    from agent.sessions import site_session
    from playbooks.errors import LockedError

    root = fleet.add(DemoSite("acme", "6.5.3", {}), ssh=sshd)
    link = fleet.folder / "acme-link"
    link.symlink_to(root)
    fleet.blocks.append(f'[[sites]]\nname = "acme-www"\nurl = "{fleet.web.url("acme")}"\npath = "{link}"\n'
                        f'wp_cli = "{fleet.wp}"\nbackup_dir = "{fleet.folder / "backups" / "acme-www"}"\n'
                        f'[sites.ssh]\nhost = "127.0.0.1"\nport = {sshd.port}\nuser = "{sshd.user}"\n'
                        f'key = "{sshd.client_key}"\nknown_hosts = "{sshd.known_hosts}"\n')
    fleet.write()
    config = load(fleet.config)
    with Services.open(config, FixedClock(NOW)) as services:
        with site_session(services, config.site("acme")):
            with pytest.raises(LockedError, match="its WordPress root .* is being worked on by run"), \
                    site_session(services, config.site("acme-www")):
                pass
            assert not (fleet.folder / "backups/acme-www/.wpfleet.lock").exists()  # it never took its own lock
        with site_session(services, config.site("acme-www")):  # once the first run let go
            assert (fleet.folder / "backups/acme-www/.wpfleet.lock").exists()
        rows = services.state.db.rows("SELECT site FROM leases")
        assert rows == []  # every claim released
