"""A restore is exact even when the backup folder lies deep inside the WordPress root: everything
added after the backup goes, at every depth, and the backup folder (with the site's lock) stays."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from agent.cli import main
from agent.clock import FixedClock
from agent.demo import DemoSite
from tests.conftest import Fleet, plugin_version

AT = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)


def cli(fleet: Fleet, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--config", str(fleet.config), *args], clock=FixedClock(AT))
    return code, out.getvalue()


def test_a_restore_with_the_backups_inside_wp_content_removes_what_came_after(fleet: Fleet) -> None:
    root = fleet.add(DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True)}))
    inside = root / "wp-content" / "wpfleet-backups"
    fleet.config.write_text(fleet.config.read_text().replace(
        f'backup_dir = "{fleet.folder / "backups" / "acme"}"', f'backup_dir = "{inside}"'))
    assert cli(fleet, "backup", "--site", "acme")[0] == 0
    code, listed = cli(fleet, "backups", "--json")
    backup_id = json.loads(listed)[0]["id"]
    added = [root / "added.php", root / "wp-content" / "plugins" / "added-plugin" / "added-plugin.php",
             root / "wp-content" / "uploads" / "2026" / "11" / "after.jpg", root / "wp-content" / "after.txt",
             root / "wp-content" / "wpfleet-backups-not" / "x"]
    for path in added:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("added after the backup")
    (root / "wp-content/plugins/akismet/akismet.php").write_text(
        (root / "wp-content/plugins/akismet/akismet.php").read_text().replace("5.3.0", "5.9.9"))
    code, out = cli(fleet, "restore", "--site", "acme", backup_id)
    assert code == 0, out
    assert [p for p in added if p.exists()] == []
    assert not (root / "wp-content/plugins/added-plugin").exists() and not (root / "wp-content/uploads/2026").exists()
    assert plugin_version(root, "akismet") == "5.3.0"
    assert (inside / backup_id / "manifest.json").exists()  # the backups themselves are spared, exactly
    assert json.loads(cli(fleet, "backups", "--json")[1])[0]["id"] == backup_id
    assert not (inside / ".wpfleet.lock").exists()  # the restore's lock was released
