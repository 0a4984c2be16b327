"""A demo fleet on this machine: WordPress-shaped sites driven by the WP-CLI stand-in.

``wpfleet demo`` builds it and inventories it, so a new user sees the agent work without a
client site. The tests build their fixtures with the same helpers.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WPSIM = Path(__file__).with_name("wpsim.py")

DEMO_WPORG = {
    "core": ["6.4.5", "6.5.5", "6.6.2"],
    "plugins": {
        "akismet": ["5.3.1", "5.3.2", "5.4.0", "6.0.0"],
        "contact-form-7": ["5.9.8"],
        "classic-editor": ["1.6.4"],
    },
    "themes": {"twentytwentyfour": ["1.2"], "twentytwentythree": ["1.4"]},
}


@dataclass
class DemoSite:
    name: str
    core: str = "6.5.3"
    plugins: dict[str, tuple[str, bool]] = field(default_factory=dict)
    themes: dict[str, str] = field(default_factory=lambda: {"twentytwentyfour": "1.1"})
    active_theme: str = "twentytwentyfour"


DEMO_SITES = [
    DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True), "contact-form-7": ("5.9.3", True)}),
    DemoSite("bakery", "6.4.3", {"akismet": ("6.0.0", True), "classic-editor": ("1.6.4", False)},
             {"twentytwentythree": "1.3"}, "twentytwentythree"),
    DemoSite("clinic", "6.6.2", {"classic-editor": ("1.6.3", True)}),
]


def write_plugin(root: Path, slug: str, version: str, extra: str = "") -> Path:
    folder = root / "wp-content" / "plugins" / slug
    folder.mkdir(parents=True, exist_ok=True)
    main = folder / f"{slug}.php"
    main.write_text(f"<?php\n/**\n * Plugin Name: {slug.replace('-', ' ').title()}\n * Version: {version}\n */\n{extra}")
    return main


def write_theme(root: Path, slug: str, version: str, template: str | None = None) -> None:
    folder = root / "wp-content" / "themes" / slug
    folder.mkdir(parents=True, exist_ok=True)
    parent = f"Template: {template}\n" if template else ""
    (folder / "style.css").write_text(f"/*\nTheme Name: {slug.title()}\nVersion: {version}\n{parent}*/\n")
    (folder / "functions.php").write_text("<?php\n")


def build_site(root: Path, spec: DemoSite, url: str = "http://127.0.0.1/") -> Path:
    """A WordPress-shaped folder: version.php, wp-config.php, plugins, themes and options."""
    (root / "wp-includes").mkdir(parents=True, exist_ok=True)
    (root / "wp-includes" / "version.php").write_text(
        f"<?php\n$wp_version = '{spec.core}';\n$wp_db_version = 57155;\n$tinymce_version = '49110-20201110';\n")
    (root / "wp-config.php").write_text("<?php\n$table_prefix = 'wp_';\n")
    (root / "index.php").write_text("<?php\n")
    (root / "wp-includes" / "functions.php").write_text("<?php\n// WordPress core functions (demo)\n")
    for slug, (version, _active) in spec.plugins.items():
        write_plugin(root, slug, version)
    for slug, version in spec.themes.items():
        write_theme(root, slug, version)
    database = root / "wp-content" / "database"
    database.mkdir(parents=True, exist_ok=True)
    options = {
        "siteurl": url, "home": url, "blogname": spec.name.title(), "db_version": 57155,
        "active_plugins": [f"{s}/{s}.php" for s, (_v, active) in spec.plugins.items() if active],
        "stylesheet": spec.active_theme, "template": spec.active_theme,
    }
    (database / "wpsim.json").write_text(json.dumps(options, indent=1))
    return root


def core_checksums(root: Path) -> dict[str, str]:
    """MD5 of every core file of a WordPress root, as wordpress.org's checksums API lists them."""
    files = [p for folder in ("wp-admin", "wp-includes") for p in (root / folder).rglob("*") if p.is_file()]
    files += [p for p in root.glob("*.php") if p.name != "wp-config.php"]
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(files)}


def publish_checksums(wporg: Path, versions: list[str], root: Path | None = None) -> None:
    """Let this fleet's "wordpress.org" serve core checksums: of ``root`` (a real WordPress) for its
    version, or of the demo's core files for each of ``versions``."""
    repo = json.loads(wporg.read_text())
    sums = repo.setdefault("core_checksums", {})
    for version in versions:
        if root is not None:
            sums[version] = core_checksums(root)
            continue
        with tempfile.TemporaryDirectory() as scratch:
            sums[version] = core_checksums(build_site(Path(scratch), DemoSite("core", version)))
    wporg.write_text(json.dumps(repo, indent=1))


def real_site_block(name: str, url: str, root: Path, wp: Path, backups: Path, password_env: str, user: str) -> str:
    """sites.toml for a real WordPress on this machine, read by the stand-in and over REST."""
    return (f'\n[[sites]]\nname = "{name}"\nurl = "{url}"\npath = "{root}"\nwp_cli = "{wp}"\n'
            f'backup_dir = "{backups}"\nsettle_seconds = 3  # php -S runs OPcache\n'
            f'[sites.rest]\nuser = "{user}"\npassword_env = "{password_env}"\n'
            '[sites.contract]\nhold = ["core"]  # the stand-in cannot really replace core files\n')


def write_wp_command(folder: Path, wporg: Path, delay: float = 0.0, calls: Path | None = None,
                     sqlite_command: bool = False, pause: Path | None = None, fail: Path | None = None) -> Path:
    """An executable ``wp`` that runs the stand-in with this fleet's "wordpress.org" (and, with
    ``sqlite_command``, the wp-cli/sqlite-command package installed)."""
    folder.mkdir(parents=True, exist_ok=True)
    exports = [f"export WPSIM_WPORG='{wporg}'"] + (["export WPSIM_SQLITE_COMMAND=1"] if sqlite_command else [])
    if delay:
        exports.append(f"export WPSIM_DELAY={delay}")
    if calls is not None:
        exports.append(f"export WPSIM_CALLS='{calls}'")
    if pause is not None:  # fault-injection tests (see wpsim's docstring)
        exports.append(f"export WPSIM_PAUSE='{pause}'")
    if fail is not None:
        exports.append(f"export WPSIM_FAIL='{fail}'")
    script = folder / "wp"
    script.write_text("#!/bin/sh\n" + "\n".join(exports) + f"\nexec '{sys.executable}' '{WPSIM}' \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


CONTRACT = """[contract]
support_start = "2026-03-01"
support_until = "2028-02-29"
major_window_start = "03-01"
major_window_days = 30
support_days = ["Sat", "Sun", "Mon", "Tue", "Wed"]
support_hours = "08:00-16:30"
holidays = ["IR"]
response_minutes = 60
hold = []
"""


def build_fleet(folder: Path, urls: Callable[[str], str] | None = None, contract: str = CONTRACT,
                wporg_data: dict[str, Any] | None = None, extra: str = "",
                wporg_api: str | None = None) -> tuple[Path, dict[str, Path]]:
    """The demo fleet under ``folder``: its ``sites.toml`` and each site's WordPress root
    (``wporg_api``: where the agent asks "wordpress.org" for a slug's releases)."""
    folder = folder.resolve()
    wporg = folder / "wordpress.org.json"
    wporg.write_text(json.dumps(wporg_data or DEMO_WPORG, indent=1))
    wp = write_wp_command(folder / "bin", wporg)
    publish_checksums(wporg, sorted({s.core for s in DEMO_SITES} | set(json.loads(wporg.read_text())["core"])))
    blocks, roots = [], {}
    for spec in DEMO_SITES:
        url = urls(spec.name) if urls else f"https://{spec.name}.example/"
        root = build_site(folder / "sites" / spec.name, spec, url)
        roots[spec.name] = root
        blocks.append(
            f'[[sites]]\nname = "{spec.name}"\nurl = "{url}"\npath = "{root}"\n'
            f'wp_cli = "{wp}"\nbackup_dir = "{folder / "backups" / spec.name}"\n'
        )
    config = folder / "sites.toml"
    config.write_text(
        '# The demo fleet: local WordPress-shaped sites and a WP-CLI stand-in.\n'
        '[agent]\nstate_dir = "state"\nconcurrency = 4\ntimezone = "Asia/Tehran"\n'
        'settle_seconds = 0  # the stand-in web has no OPcache to wait for\n'
        + (f'wporg_api = "{wporg_api}"  # the stand-in\'s wordpress.org info API\n' if wporg_api else "") + "\n"
        + contract + "\n" + "\n".join(blocks) + extra
    )
    return config, roots


def default_folder() -> Path:
    return Path(os.environ.get("WPFLEET_DEMO_DIR", "wpfleet-demo"))
