"""The stand-in's ``search-replace`` and ``db search`` (the migration's tools) on a real WordPress's
SQLite database: every form of a URL, serialized data kept valid (checked with PHP's own
``unserialize``), ``guid`` left alone, and WP-CLI 2.12.0's output formats."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import phpserialize
import pytest

from agent.demo import realwp
from tests import transcripts
from tests.conftest import Fleet

pytestmark = pytest.mark.integration
OLD, NEW = "http://old.example", "https://www.new-shop.example"


def seed(db_file: Path) -> None:
    widget = phpserialize.dumps({"title": "Find us", "text": f'<a href="{OLD}/contact/">Contact</a>'}).decode()
    with sqlite3.connect(db_file) as db:
        db.execute("INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('widget_wpfleet', ?, 'yes')",
                   (widget,))
        db.execute("UPDATE wp_posts SET post_content = ?, guid = ? WHERE ID = 1",
                   (f'<p>See <a href="{OLD}/about/">about</a> and <a href="{OLD}.au/">not us</a></p>', f"{OLD}/?p=1"))


def wp(fleet: Fleet, root: Path, *argv: str) -> tuple[int, str, str]:
    done = subprocess.run([str(fleet.wp), f"--path={root}", "--no-color", *argv], capture_output=True, text=True,
                          timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_search_replace_on_a_real_wordpress(real_wordpress_factory: Callable[[str], realwp.RealWordPress],
                                            fleet: Fleet) -> None:
    site = real_wordpress_factory("6.5")
    db_file = site.root / "wp-content/database/.ht.sqlite"
    seed(db_file)
    bounded = r"http://old\.example(?![.\w])"  # never old.example.au
    args = ("--regex", "--precise", "--all-tables-with-prefix", "--skip-columns=guid", "--report-changed-only")
    code, out, _ = wp(fleet, site.root, "search-replace", bounded, NEW, *args, "--dry-run")
    assert code == 0 and out.startswith("Table\tColumn\tReplacements\tType\n")
    assert "wp_options\toption_value\t1\tPHP\n" in out and "wp_posts\tpost_content\t1\tPHP\n" in out
    assert out.endswith("Success: 2 replacements to be made.\n")
    assert wp(fleet, site.root, "search-replace", bounded, NEW, *args, "--dry-run", "--format=count")[1] == "2\n"
    code, out, _ = wp(fleet, site.root, "search-replace", bounded, NEW, *args)
    assert code == 0 and out.endswith("Success: Made 2 replacements.\n")
    with sqlite3.connect(db_file) as db:
        widget = db.execute("SELECT option_value FROM wp_options WHERE option_name = 'widget_wpfleet'").fetchone()[0]
        content, guid = db.execute("SELECT post_content, guid FROM wp_posts WHERE ID = 1").fetchone()
    assert NEW in widget and f'{OLD}.au/' in content and f'{NEW}/about/' in content
    assert guid == f"{OLD}/?p=1"  # guid is never rewritten
    php = subprocess.run(["php", "-r", 'var_export(unserialize(stream_get_contents(STDIN)) !== false);'],
                         input=widget, capture_output=True, text=True, check=True)
    assert php.stdout == "true"  # the longer URL's string length was rewritten with it
    code, out, _ = wp(fleet, site.root, "db", "search", bounded, "--regex", "--all-tables-with-prefix")
    assert code == 0 and out == f"wp_posts:guid\n1:{OLD}/?p=1\n"  # only the guid keeps it
    again = wp(fleet, site.root, "search-replace", bounded, NEW, *args, "--format=count")
    assert again[1] == "0\n"  # a finished replacement finds nothing more


def test_db_search_formats_answer_as_wp_cli(real_wordpress_factory: Callable[[str], realwp.RealWordPress],
                                            fleet: Fleet) -> None:
    site = real_wordpress_factory("6.5")
    home = site.url.rstrip("/")
    for index in (385, 386):  # count and ids need a single table
        expected = transcripts.answer(index)
        fmt = "count" if index == 385 else "ids"
        assert wp(fleet, site.root, "db", "search", home, "--all-tables-with-prefix", f"--format={fmt}") == expected
    code, out, _ = wp(fleet, site.root, "db", "search", home, "wp_options", "--format=ids")
    assert code == 0 and out.split()[:2] == ["1", "2"]  # siteurl and home, by option_id
