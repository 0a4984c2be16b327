"""The WP-CLI stand-in answers as the real WP-CLI 2.12.0 did (tests/data/wpcli/transcripts.jsonl).

Each transcript that ``replay.json`` maps to a site state is replayed on a fresh stand-in site
built in that state: the same exit code, the same stdout (JSON compared as data; ``cli info``
by its keys, its values describe the recording machine), the same ``Error:``/``Warning:`` lines.
Every other transcript carries the reason it is not replayed; none is silently left out.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import phpserialize
import pytest

from agent.demo import wpsim
from tests import transcripts
from tests.conftest import require

REPLAY = json.loads((transcripts.DATA / "replay.json").read_text())
CASES: dict[str, dict[str, Any]] = REPLAY["cases"]
REPLAYED = sorted(int(i) for i, case in CASES.items() if "state" in case)


def test_every_transcript_is_replayed_or_says_why_not() -> None:
    assert sorted(int(i) for i in CASES) == list(range(len(transcripts.transcripts())))
    reasons = [case["not_reproduced"] for case in CASES.values() if "state" not in case]
    assert all(len(reason) > 20 for reason in reasons)
    assert len(REPLAYED) >= 250


def spec_for(case: dict[str, Any]) -> dict[str, Any]:
    spec = json.loads(json.dumps(REPLAY["states"][case["state"]]))
    changes = dict(case.get("with", {}))
    for key, value in changes.pop("wporg_set", {}).items():
        spec["wporg"][key].update(value)
    for key, value in changes.pop("wporg_add", {}).items():
        for slug, releases in value.items():
            known = spec["wporg"][key].get(slug, {})
            known = {v: {} for v in known} if isinstance(known, list) else known
            known.update({v: {} for v in releases} if isinstance(releases, list) else releases)
            spec["wporg"][key][slug] = known
    return spec | changes


def build(root: Path, spec: dict[str, Any]) -> None:
    """A WordPress-shaped folder in the state ``spec`` describes, for the stand-in."""
    (root / "wp-includes").mkdir(parents=True)
    db_version = spec.get("wp_db_version", 56657)
    (root / "wp-includes" / "version.php").write_text(
        f"<?php\n$wp_version = '{spec['core']}';\n$wp_db_version = {db_version};\n"
        "$tinymce_version = '49110-20201110';\n")
    config = "<?php\n$table_prefix = 'wp_';\n"
    if spec.get("fatal_handler") is False:
        config += "define( 'WP_DISABLE_FATAL_ERROR_HANDLER', true );\n"
    if spec.get("config_fatal"):
        config += "wpsim_cfg_boom(); // wpsim:fatal\n"
    for name, value in spec.get("constants", {}).items():
        config += f"define( '{name}', '{value}' );\n"
    (root / "wp-config.php").write_text(config)
    content = root / "wp-content"
    for folder in ("plugins", "themes", "mu-plugins", "database"):
        (content / folder).mkdir(parents=True)
    fatal, inactive = set(spec.get("fatal", [])), set(spec.get("inactive", []))
    active = []
    for plugin in spec["plugins"]:
        file = content / "plugins" / plugin["file"]
        file.parent.mkdir(parents=True, exist_ok=True)
        name = plugin["file"].split("/")[0].removesuffix(".php")
        broken = plugin.get("fatal") or name in fatal
        file.write_text(f"<?php\n/**\n * Plugin Name: {plugin['title']}\n * Version: {plugin['version']}\n */\n"
                        + ("wpsim_boom(); // wpsim:fatal\n" if broken else ""))
        if plugin.get("active") and name not in inactive:
            active.append(plugin["file"])
    for name in spec.get("mu_plugins", []):
        (content / "mu-plugins" / f"{name}.php").write_text("<?php\n")
    theme = spec.get("active_theme") or next(t["name"] for t in spec["themes"] if t.get("active"))
    for item in spec["themes"]:
        folder = content / "themes" / item["name"]
        folder.mkdir()
        (folder / "style.css").write_text(f"/*\nTheme Name: {item['title']}\nVersion: {item['version']}\n*/\n")
        broken = spec.get("theme_fatal") == item["name"]
        (folder / "functions.php").write_text("<?php\n" + ("wpsim_boom(); // wpsim:fatal\n" if broken else ""))
        if item.get("block"):
            (folder / "templates").mkdir()
            (folder / "templates" / "index.html").write_text("<!-- wp:post-content /-->\n")
    home = spec.get("home", "http://127.0.0.1:18082")
    options = {"siteurl": home, "home": home, "active_plugins": active, "stylesheet": theme, "template": theme,
               "db_version": spec.get("db_version", 56657)} | spec.get("options", {})
    if spec["db"] == "sqlite":
        (content / "db.php").write_text("<?php\n// the SQLite Database Integration drop-in (sqlite-database-integration)\n")
        with sqlite3.connect(content / "database" / ".ht.sqlite") as db:
            db.execute("CREATE TABLE wp_options (option_id INTEGER PRIMARY KEY, option_name TEXT UNIQUE, "
                       "option_value TEXT, autoload TEXT)")
            for key, value in options.items():
                stored = value if isinstance(value, str) else phpserialize.dumps(value).decode()
                db.execute("INSERT INTO wp_options (option_name, option_value, autoload) VALUES (?, ?, 'yes')",
                           (key, stored))
    else:
        (content / "database" / "wpsim.json").write_text(json.dumps(options))
    if spec.get("maintenance"):
        (root / ".maintenance").write_text("<?php $upgrading = 1795600000; ?>")


def replay(index: int, tmp: Path) -> tuple[dict[str, Any], subprocess.CompletedProcess[str], str]:
    row = transcripts.row(index)
    spec = spec_for(CASES[str(index)])
    real, ours = "/srv/wp", str(tmp / "srv" / "wp")
    argv = [a.replace(real, ours) for a in row["argv"]]
    root = Path(next(a for a in argv if a.startswith("--path=")).removeprefix("--path="))
    build(root, spec)
    for arg in argv:  # folders a dump or an export writes into
        if arg.startswith(ours) and not arg.startswith("--"):
            Path(arg).parent.mkdir(parents=True, exist_ok=True)
    wporg = tmp / "wordpress.org.json"
    wporg.write_text(json.dumps(spec["wporg"]))
    env = {**os.environ, "WPSIM_WPORG": str(wporg), "WPSIM_DOWNLOADS": "http://127.0.0.1:18890",
           "WPSIM_PHP_VERSION": "8.2.36"}
    env.pop("WPSIM_SQLITE_COMMAND", None)
    if spec.get("offline"):
        env["WPSIM_WPORG_DOWN"] = "1"
    words = [a for a in argv if not a.startswith("--")]
    if words[:2] in (["db", "import"], ["sqlite", "import"]) and len(words) > 2 and row["exit_code"] == 0:
        # the dump it imports was made earlier in the recording
        subprocess.run([sys.executable, wpsim.__file__, f"--path={root}", "--skip-plugins", "--skip-themes",
                        words[0], "export", words[2]], env=env, cwd=tmp, check=True, capture_output=True)
    done = subprocess.run([sys.executable, wpsim.__file__, *argv], capture_output=True, text=True, env=env,
                          cwd=tmp, check=False, timeout=60)
    return row, done, ours


def labelled(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("Error:", "Warning:"))]


def same_stdout(expected: str, got: str) -> bool:
    try:
        want = json.loads(expected)
    except ValueError:
        return got == expected
    try:
        have = json.loads(got)
    except ValueError:
        return False
    if isinstance(want, dict) and "wp_cli_version" in want:  # cli info: the machine's own values
        return isinstance(have, dict) and set(have) == set(want) and have["wp_cli_version"] == want["wp_cli_version"]
    return bool(have == want)


@pytest.mark.parametrize("index", REPLAYED)
def test_stand_in_answers_as_real_wp_cli(index: int, tmp_path: Path) -> None:
    if transcripts.row(index)["argv"][-3:-1] == ["db", "export"]:  # recorded where the MySQL client tools exist
        require(shutil.which("mariadb") is not None, "the MariaDB client tools are not installed")
    row, done, ours = replay(index, tmp_path)
    expected_out = row["stdout"].replace("/srv/wp", ours)
    expected_err = [line.replace("/srv/wp", ours) for line in labelled(row["stderr"])]
    context = f"wp {' '.join(row['argv'])}\nstdout: {done.stdout!r}\nstderr: {done.stderr!r}"
    assert done.returncode == row["exit_code"], context
    assert same_stdout(expected_out, done.stdout), f"{context}\nexpected stdout: {expected_out!r}"
    assert labelled(done.stderr) == expected_err, context
