"""The check-up's WP-CLI reads: the agent's parsers on the real WP-CLI 2.12.0 outputs, and the
stand-in answering those commands as the transcripts show."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import demo
from inventory.transport import CommandResult
from playbooks import checkup as facts
from tests import transcripts


def real(index: int) -> CommandResult:
    code, out, err = transcripts.answer(index)
    return CommandResult(transcripts.command_key(transcripts.row(index)["argv"]), code, out, err)


@pytest.mark.parametrize(("index", "value"), [(304, False), (306, True), (307, True), (310, False), (312, False),
                                               (316, True), (314, False)])
def test_wp_config_flags_from_real_outputs(index: int, value: bool) -> None:
    assert facts._flag(real(index)) is value


def test_core_checksums_from_real_outputs() -> None:
    assert facts._checksums(real(296)) == (True, [])
    assert facts._checksums(real(297)) == (False, ["File doesn't verify against checksum: wp-includes/functions.php"])
    assert facts._checksums(real(298)) == (False, ["File doesn't verify against checksum: wp-includes/functions.php",
                                                    "File should not exist: wp-includes/wp-feed-cache.php"])
    assert facts._checksums(real(299)) == (None, [])  # a refused call is no data, not a verdict


def test_autoload_bytes_and_overdue_cron_from_real_outputs() -> None:
    assert facts._number(real(325)) == 7113 and facts._number(real(329)) is None
    late = facts._overdue(real(323), datetime(2026, 11, 26, 2, 0, tzinfo=UTC))
    assert late is not None and {"wpfleet_overdue_probe", "wpfleet_overdue_probe2"} <= set(late)
    assert facts._overdue(real(323), datetime(2026, 11, 26, 0, 30, tzinfo=UTC)) == []


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    wporg = tmp_path / "wporg.json"
    wporg.write_text(json.dumps(demo.DEMO_WPORG))
    root = demo.build_site(tmp_path / "acme", demo.DemoSite("acme", "6.4.4", {"akismet": ("5.3.0", True)}))
    demo.publish_checksums(wporg, ["6.4.4"])
    return demo.write_wp_command(tmp_path / "bin", wporg), root


def stand_in(site: tuple[Path, Path], *argv: str) -> tuple[int, str, str]:
    wp, root = site
    done = subprocess.run([str(wp), f"--path={root}", "--no-color", *argv], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_config_get_answers_as_wp_cli(site: tuple[Path, Path]) -> None:
    config = site[1] / "wp-config.php"
    assert stand_in(site, "config", "get", "WP_DEBUG") == transcripts.answer(312)
    config.write_text(config.read_text() + "define( 'WP_DEBUG', true );\n")
    assert stand_in(site, "config", "get", "WP_DEBUG") == transcripts.answer(306)
    assert stand_in(site, "config", "get", "WP_DEBUG", "--format=json") == transcripts.answer(307)
    config.write_text(config.read_text().replace("'WP_DEBUG', true", "'WP_DEBUG', false"))
    assert stand_in(site, "config", "get", "WP_DEBUG") == transcripts.answer(309)
    assert stand_in(site, "config", "get", "WP_DEBUG", "--format=json") == transcripts.answer(310)


def test_verify_checksums_answers_as_wp_cli(site: tuple[Path, Path]) -> None:
    root = site[1]
    assert stand_in(site, "core", "verify-checksums") == transcripts.answer(296)
    (root / "wp-includes/functions.php").write_text("<?php // changed\n")
    assert stand_in(site, "core", "verify-checksums") == transcripts.answer(297)
    (root / "wp-includes/wp-feed-cache.php").write_text("<?php\n")
    assert stand_in(site, "core", "verify-checksums") == transcripts.answer(298)
    assert stand_in(site, "core", "verify-checksums", "--format=json") == transcripts.answer(299)


def test_option_totals_and_cron_answer_as_wp_cli(site: tuple[Path, Path]) -> None:
    code, out, err = stand_in(site, "option", "list", "--autoload=on", "--format=total_bytes")
    assert code == 0 and out.strip().isdigit() and out.endswith("\n") and err == ""
    assert stand_in(site, "option", "list", "--autoload=all", "--format=total_bytes") == transcripts.answer(329)
    options = site[1] / "wp-content/database/wpsim.json"
    data = json.loads(options.read_text())
    data["cron"] = {"1795652565": {"wpfleet_overdue_probe": {"40cd750bba9870f18aada2478b24840a": {
        "schedule": False, "args": []}}}, "1795656135": {"wp_version_check": {"x": {
            "schedule": "twicedaily", "interval": 43200, "args": []}}}, "version": 2}
    options.write_text(json.dumps(data))
    code, out, _ = stand_in(site, "cron", "event", "list", "--format=json",
                            "--fields=hook,next_run_gmt,next_run_relative,recurrence")
    real_keys = list(json.loads(transcripts.answer(323)[1])[0])
    rows = json.loads(out)
    assert code == 0 and [list(r) for r in rows] == [real_keys, real_keys]
    assert rows[0] == {"hook": "wpfleet_overdue_probe", "next_run_gmt": "2026-11-26 00:22:45",
                       "next_run_relative": "now", "recurrence": "Non-repeating"}
    assert rows[1]["recurrence"] == "12 hours"
