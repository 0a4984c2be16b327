#!/usr/bin/env python3
"""A stand-in for WP-CLI, for the demo fleet and the tests; never used on a client site.

It works on a WordPress-shaped folder the way WP-CLI does: the core version from
``wp-includes/version.php``, plugins from their PHP headers, themes from ``style.css``, the
options from the site's database (the real SQLite file of a SQLite install, else a JSON file).
It reproduces WP-CLI's documented outputs and exit codes, including the ugly parts: a plugin
that fatals (``wpsim:fatal`` in its code) makes every command that loads WordPress exit 255,
``wpsim:notice`` prints a PHP notice on stdout before the JSON, and ``--format=json`` switches
``update`` commands to the quiet logger.

"wordpress.org" is a JSON file named by ``$WPSIM_WPORG``:
``{"core": ["6.5.5"], "plugins": {"akismet": {"5.4.0": {}, "6.0.0": {"fatal": true}}}, "themes": {}}``.
``$WPSIM_DELAY`` adds a bootstrap delay in seconds; ``$WPSIM_CALLS`` names a file that gets one
line per invocation.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

CLI_VERSION = "2.11.0"
HEADER_BYTES = 8192
DROPINS = ("advanced-cache.php", "db.php", "db-error.php", "install.php", "maintenance.php",
           "object-cache.php", "php-error.php", "fatal-error-handler.php", "sunrise.php")


class Exit(Exception):
    def __init__(self, code: int):
        self.code = code


def out(text: str) -> None:
    sys.stdout.write(text)


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


def error(message: str, code: int = 1) -> NoReturn:
    err(f"Error: {message}")
    raise Exit(code)


def success(args: Args, message: str) -> None:
    if not args.quiet:
        out(f"Success: {message}\n")


def warning(args: Args, message: str) -> None:
    if not args.quiet:
        err(f"Warning: {message}")


def log(args: Args, message: str) -> None:
    if not args.quiet:
        out(message + "\n")


def php_json(value: Any) -> str:
    """As PHP's json_encode without flags: escaped slashes, ASCII only, no newline."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


# -- arguments --------------------------------------------------------------------------------

class Args:
    def __init__(self, argv: list[str]):
        self.words: list[str] = []
        self.flags: dict[str, str | bool] = {}
        for arg in argv:
            if arg.startswith("--"):
                key, eq, value = arg[2:].partition("=")
                self.flags[key] = value if eq else True
            else:
                self.words.append(arg)
        self.quiet = bool(self.flags.get("quiet"))

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.flags.get(key, default)
        return value if isinstance(value, str) or value is None else default

    def has(self, key: str) -> bool:
        return key in self.flags


# -- the WordPress folder ----------------------------------------------------------------------

def read_headers(path: Path, names: tuple[str, ...]) -> dict[str, str]:
    try:
        text = path.read_bytes()[:HEADER_BYTES].decode("utf-8", "replace")
    except OSError:
        return {}
    found = {}
    for name in names:
        match = re.search(rf"^[ \t/*#@]*{re.escape(name)}:(.*)$", text, re.MULTILINE | re.IGNORECASE)
        if match:
            found[name] = re.sub(r"\s*(?:\*/|\?>).*$", "", match.group(1)).strip()
    return found


class Site:
    def __init__(self, root: Path):
        self.root = root
        self.content = root / "wp-content"
        self.sqlite = self.content / "database" / ".ht.sqlite"
        self.jsondb = self.content / "database" / "wpsim.json"

    # core
    def core_version(self) -> str:
        try:
            text = (self.root / "wp-includes" / "version.php").read_text("utf-8", "replace")
        except OSError:
            error("This does not seem to be a WordPress installation.\n"
                  "The used path is: " + str(self.root) + "/\n"
                  "Pass --path=`path/to/wordpress` or run `wp core download`.")
        match = re.search(r"\$wp_version\s*=\s*'([^']*)'", text)
        return match.group(1) if match else ""

    def version_var(self, name: str) -> str:
        text = (self.root / "wp-includes" / "version.php").read_text("utf-8", "replace")
        match = re.search(rf"\${name}\s*=\s*'?([^';]*)'?;", text)
        return match.group(1) if match else ""

    # options ("the database")
    def _prefix(self) -> str:
        try:
            text = (self.root / "wp-config.php").read_text("utf-8", "replace")
        except OSError:
            return "wp_"
        match = re.search(r"\$table_prefix\s*=\s*'([^']*)'", text)
        return match.group(1) if match else "wp_"

    def option(self, name: str) -> Any:
        if self.sqlite.exists():
            with sqlite3.connect(self.sqlite) as db:
                row = db.execute(f"SELECT option_value FROM {self._prefix()}options WHERE option_name = ?",
                                 (name,)).fetchone()
            return None if row is None else php_unserialize(row[0])
        return self._json().get(name)

    def set_option(self, name: str, value: Any) -> None:
        if self.sqlite.exists():
            with sqlite3.connect(self.sqlite) as db:
                db.execute(f"UPDATE {self._prefix()}options SET option_value = ? WHERE option_name = ?",
                           (php_serialize(value), name))
            return
        data = self._json()
        data[name] = value
        self.jsondb.write_text(json.dumps(data, indent=1))

    def _json(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.jsondb.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def has_db(self) -> bool:
        return self.sqlite.exists() or self.jsondb.exists()

    # plugins and themes
    def plugins(self) -> list[dict[str, Any]]:
        base = self.content / "plugins"
        found: list[dict[str, Any]] = []
        candidates = sorted(base.glob("*.php")) + sorted(base.glob("*/*.php"))
        for file in candidates:
            headers = read_headers(file, ("Plugin Name", "Version"))
            if "Plugin Name" not in headers:
                continue
            rel = file.relative_to(base).as_posix()
            name = rel.split("/")[0] if "/" in rel else file.stem
            found.append({"file": rel, "name": name, "title": headers["Plugin Name"],
                          "version": headers.get("Version", ""), "path": file})
        active = self.option("active_plugins") or []
        for plugin in found:
            plugin["status"] = "active" if plugin["file"] in active else "inactive"
        for file in sorted((self.content / "mu-plugins").glob("*.php")):
            headers = read_headers(file, ("Plugin Name", "Version"))
            found.append({"file": file.name, "name": file.stem, "title": headers.get("Plugin Name", file.stem),
                          "version": headers.get("Version", ""), "status": "must-use", "path": file})
        for dropin in DROPINS:
            file = self.content / dropin
            if file.exists():
                headers = read_headers(file, ("Plugin Name", "Version"))
                found.append({"file": dropin, "name": dropin, "title": headers.get("Plugin Name", dropin),
                              "version": headers.get("Version", ""), "status": "dropin", "path": file})
        return found

    def themes(self) -> list[dict[str, Any]]:
        stylesheet = self.option("stylesheet")
        template = self.option("template")
        found = []
        for css in sorted((self.content / "themes").glob("*/style.css")):
            headers = read_headers(css, ("Theme Name", "Version", "Template"))
            if "Theme Name" not in headers:
                continue
            name = css.parent.name
            status = "active" if name == stylesheet else "parent" if name == template else "inactive"
            block = (css.parent / "templates" / "index.html").exists()
            found.append({"name": name, "title": headers["Theme Name"], "version": headers.get("Version", ""),
                          "status": status, "type": "block" if block else "classic", "path": css.parent,
                          "file": f"{name}/style.css"})
        return found

    def boot_problem(self, skip_plugins: bool = False, skip_themes: bool = False) -> tuple[int, str, list[str]]:
        """What booting WordPress would do: (exit code, stderr text, notices printed on stdout)."""
        if not (self.root / "wp-includes" / "version.php").exists():
            return 1, ("Error: This does not seem to be a WordPress installation.\nThe used path is: "
                       f"{self.root}/\nPass --path=`path/to/wordpress` or run `wp core download`."), []
        if not (self.root / "wp-config.php").exists():
            return 1, "Error: 'wp-config.php' not found.\nEither create one manually or use `wp config create`.", []
        if not self.has_db():
            return 1, "Error: Error establishing a database connection.", []
        code: list[tuple[str, Path]] = [("core", self.root / "wp-includes" / "wpsim-broken.php")]
        code += [(p.stem, p) for p in sorted((self.content / "mu-plugins").glob("*.php"))]
        if not skip_plugins:
            code += [(p["name"], p["path"]) for p in self.plugins() if p["status"] == "active"]
        if not skip_themes:
            code += [(t["name"], t["path"] / "functions.php") for t in self.themes() if t["status"] in ("active", "parent")]
        notices = []
        for name, file in code:
            try:
                text = file.read_text("utf-8", "replace")
            except OSError:
                continue
            if "wpsim:notice" in text:
                notices.append(f"\nNotice: Undefined variable $wpsim in {file} on line 3\n")
            if "wpsim:fatal" in text:
                return 255, (
                    f"PHP Fatal error:  Uncaught Error: Call to undefined function wpsim_boom() in {file}:3\n"
                    "Error: There has been a critical error on this website.Learn more about troubleshooting "
                    f"WordPress. This may be caused by the '{name}' plugin or theme. Try running again with "
                    f"--skip-plugins={name} or --skip-themes={name}."), notices
        return 0, "", notices

    def load_wordpress(self, args: Args) -> None:
        """What booting WordPress costs and risks: config, database, plugin and theme code."""
        code, message, notices = self.boot_problem(args.has("skip-plugins"), args.has("skip-themes"))
        for notice in notices:
            out(notice)
        if code:
            err(message)
            raise Exit(code)

    def load_config(self) -> None:
        """WP-CLI's db commands stop after wp-config.php: no plugin code runs."""
        self.core_version()
        if not (self.root / "wp-config.php").exists():
            error("'wp-config.php' not found.\nEither create one manually or use `wp config create`.")

    # maintenance mode, as WP_Upgrader::maintenance_mode writes it
    def maintenance(self, on: bool) -> None:
        marker = self.root / ".maintenance"
        if on:
            marker.write_text(f"<?php $upgrading = {int(time.time())}; ?>")
        elif marker.exists():
            marker.unlink()


# -- PHP serialization, enough for options -------------------------------------------------------

def php_unserialize(text: str) -> Any:
    if not isinstance(text, str) or not re.match(r"^[aisbN][:;]", text):
        return text
    value, _ = _unser(text.encode(), 0)
    return value


def _unser(data: bytes, pos: int) -> tuple[Any, int]:
    kind = chr(data[pos])
    if kind == "N":
        return None, pos + 2
    if kind in "ib":
        end = data.index(b";", pos)
        number = int(data[pos + 2:end])
        return (bool(number) if kind == "b" else number), end + 1
    if kind == "s":
        colon = data.index(b":", pos + 2)
        length = int(data[pos + 2:colon])
        start = colon + 2
        return data[start:start + length].decode(), start + length + 2
    if kind == "a":
        colon = data.index(b":", pos + 2)
        count = int(data[pos + 2:colon])
        pos = colon + 2
        items: dict[Any, Any] = {}
        for _ in range(count):
            key, pos = _unser(data, pos)
            items[key], pos = _unser(data, pos)
        pos += 1
        if list(items) == list(range(len(items))):
            return list(items.values()), pos
        return items, pos
    raise ValueError(f"cannot unserialize at {pos}")


def php_serialize(value: Any) -> str:
    if isinstance(value, list):
        body = "".join(f"i:{i};{php_serialize(v)}" for i, v in enumerate(value))
        return f"a:{len(value)}:{{{body}}}"
    if isinstance(value, str):
        return f's:{len(value.encode())}:"{value}";'
    if isinstance(value, int):
        return f"i:{value};"
    return str(value)


# -- "wordpress.org" -------------------------------------------------------------------------------

def wporg() -> dict[str, Any] | None:
    path = os.environ.get("WPSIM_WPORG")
    if not path:
        return None
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data


def releases(kind: str, name: str) -> dict[str, dict[str, Any]]:
    repo = wporg() or {}
    entry = repo.get(kind, {}) if kind == "core" else repo.get(kind, {}).get(name, {})
    if isinstance(entry, list):
        return {v: {} for v in entry}
    return dict(entry)


def vkey(version: str) -> tuple[Any, ...]:
    """Close enough to PHP's version_compare for numeric versions with optional suffixes."""
    main, _, suffix = version.partition("-")
    parts = [int(p) if p.isdigit() else -1 for p in main.split(".")]
    while len(parts) < 4:
        parts.append(0)
    rank = {"dev": 0, "alpha": 1, "a": 1, "beta": 2, "b": 2, "rc": 3}.get(re.sub(r"\d+$", "", suffix.lower()), 4)
    return (*parts, rank if suffix else 5, suffix)


def faults_of(props: dict[str, Any]) -> list[str]:
    """A release's faults in "wordpress.org": one name or a list of them."""
    faults = props.get("fault") or []
    return [faults] if isinstance(faults, str) else list(faults)


def semver_name(new: str, current: str) -> str:
    if vkey(new) <= vkey(current) or "dev" in new.lower() or not re.match(r"^\d", new):
        return ""
    base = current.split("-")[0].split(".")
    new_parts = new.split("-")[0].split(".")
    if len(base) >= 2 and new_parts[:2] == base[:2]:
        return "patch"
    if new_parts[0] == base[0]:
        return "minor"
    return "major"


def stable(version: str) -> bool:
    return re.fullmatch(r"\d+(\.\d+){0,3}", version) is not None


# -- output formats -----------------------------------------------------------------------------

def render(args: Args, items: list[dict[str, Any]], fields: list[str], default: str = "table") -> None:
    field = args.get("field")
    if field:
        for item in items:
            out(f"{item.get(field, '')}\n")
        return
    if args.get("fields"):
        fields = (args.get("fields") or "").split(",")
    rows = [{f: item.get(f, "") for f in fields} for item in items]
    fmt = args.get("format", default)
    if fmt == "json":
        out(php_json(rows))
    elif fmt == "count":
        out(f"{len(rows)}\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(fields)
        writer.writerows([[r[f] for f in fields] for r in rows])
        out(buffer.getvalue())
    elif fmt == "yaml":
        out("---\n" + "".join("-\n" + "".join(f"  {f}: {r[f]}\n" for f in fields) for r in rows))
    else:  # a table on a pipe is tab-separated
        out("\t".join(fields) + "\n" + "".join("\t".join(str(r[f]) for f in fields) + "\n" for r in rows))


# -- commands -----------------------------------------------------------------------------------

def cmd_cli(site: Site | None, args: Args) -> None:
    if args.words[1:2] == ["version"]:
        out(f"WP-CLI {CLI_VERSION}\n")
        return
    if args.words[1:2] != ["info"]:
        error(f"'{' '.join(args.words)}' is not a registered wp command. See 'wp help' for available commands.")
    info = {"system_os": "Linux", "shell": "/bin/sh", "php_binary_path": shutil.which("php") or "/usr/bin/php",
            "php_version": php_version(), "php_memory_limit": "128M", "php_ini_used": "",
            "mysql_binary_path": "", "mysql_version": "", "sql_modes": [], "wp_cli_dir_path": "phar://wp-cli.phar",
            "wp_cli_vendor_path": "phar://wp-cli.phar/vendor", "wp_cli_phar_path": "", "wp_cli_packages_dir_path": "",
            "wp_cli_cache_dir_path": "", "global_config_path": "", "project_config_path": "", "wp_cli_version": CLI_VERSION}
    if args.get("format") == "json":
        out(php_json(info))
    else:
        out("".join(f"{k}:\t{v}\n" for k, v in info.items()))


def php_version() -> str:
    if "WPSIM_PHP_VERSION" in os.environ:
        return os.environ["WPSIM_PHP_VERSION"]
    php = shutil.which("php")
    if php:
        done = subprocess.run([php, "-r", "echo PHP_VERSION;"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout:
            return done.stdout.strip()
    return "8.2.0"


def cmd_core(site: Site, args: Args) -> None:
    verb = args.words[1] if len(args.words) > 1 else ""
    if verb == "version":
        version = site.core_version()
        if args.has("extra"):
            out(f"WordPress version: {version}\nDatabase revision: {site.version_var('wp_db_version')}\n"
                f"TinyMCE version:   {site.version_var('tinymce_version')}\nPackage language:  en_US\n")
        else:
            out(version + "\n")
        return
    site.load_wordpress(args)
    if verb == "check-update":
        core_check_update(site, args)
    elif verb == "update":
        core_update(site, args)
    elif verb == "update-db":
        core_update_db(site, args)
    elif verb == "is-installed":
        raise Exit(0 if site.option("siteurl") else 1)
    else:
        error(f"'core {verb}' is not a registered subcommand of 'core'. See 'wp help core' for available subcommands.")


def core_offers(site: Site) -> list[dict[str, str]]:
    current = site.core_version().removesuffix("-src")
    best: dict[str, str] = {}
    for version in releases("core", ""):
        kind = semver_name(version, current)
        label = {"patch": "minor", "minor": "major", "major": "major"}.get(kind)
        if label and (label not in best or vkey(version) > vkey(best[label])):
            best[label] = version
    return [{"version": best[t], "update_type": t,
             "package_url": f"https://downloads.wordpress.org/release/wordpress-{best[t]}.zip"}
            for t in ("minor", "major") if t in best]


def core_check_update(site: Site, args: Args) -> None:
    fmt = args.get("format", "table")
    if wporg() is None:
        if fmt == "table":
            warning(args, "Failed to check for updates: cURL error 6: Could not resolve host: api.wordpress.org")
            return
        render(args, [], ["version", "update_type", "package_url"])
        return
    offers = core_offers(site)
    for only in ("major", "minor"):
        if args.has(only):
            offers = [o for o in offers if o["update_type"] == only]
    if not offers and fmt == "table":
        success(args, "WordPress is at the latest version.")
        return
    render(args, offers, ["version", "update_type", "package_url"])


def core_update(site: Site, args: Args) -> None:
    fmt = args.get("format", "table")
    if fmt in ("json", "csv"):
        args.quiet = True
    current = site.core_version()
    offers = {o["update_type"]: o["version"] for o in core_offers(site)}
    target = args.get("version") or (offers.get("minor") if args.has("minor") else offers.get("major") or offers.get("minor"))
    if not target:
        success(args, "WordPress is at the latest minor release." if args.has("minor")
                else f"WordPress is up to date at version {current}.")
        return
    if vkey(target) <= vkey(current) and not args.has("force"):
        success(args, f"WordPress is up to date at version {current}.")
        return
    props = releases("core", "").get(target)
    if props is None:
        error("Download failed.: Not Found")
    log(args, f"Updating to version {target} (en_US)...")
    log(args, f"Downloading update from https://downloads.wordpress.org/release/wordpress-{target}-no-content.zip...")
    site.maintenance(True)
    log(args, "Unpacking the update...")
    version_php = site.root / "wp-includes" / "version.php"
    text = version_php.read_text()
    text = re.sub(r"\$wp_version\s*=\s*'[^']*'", f"$wp_version = '{target}'", text)
    db_version = props.get("db_version")
    if db_version:
        text = re.sub(r"\$wp_db_version\s*=\s*\d+", f"$wp_db_version = {int(db_version)}", text)
    version_php.write_text(text)
    core_faults = faults_of(props)
    if "fatal" in core_faults:
        (site.root / "wp-includes" / "wpsim-broken.php").write_text("<?php\nwpsim_boom(); // wpsim:fatal\n")
    if "hangup" in core_faults:
        hang_up()
    site.maintenance(False)
    log(args, "Cleaning up files...\nNo old files were removed.")
    if fmt in ("json", "csv"):
        render(args, [{"name": "core", "old_version": current, "new_version": target, "status": "Updated"}],
               ["name", "old_version", "new_version", "status"])
        return
    success(args, "WordPress updated successfully.")


def core_update_db(site: Site, args: Args) -> None:
    wanted = int(site.version_var("wp_db_version") or 0)
    stored = int(site.option("db_version") or 0)
    if stored >= wanted:
        success(args, f"WordPress database already at latest db version {wanted}.")
        return
    if args.has("dry-run"):
        log(args, "Performing a dry run, with no database modification.")
        success(args, f"WordPress database will be upgraded from db version {stored} to {wanted}.")
        return
    site.set_option("db_version", str(wanted) if site.sqlite.exists() else wanted)
    success(args, f"WordPress database upgraded successfully from db version {stored} to {wanted}.")


def cmd_db(site: Site, args: Args) -> None:
    """``db export`` / ``db import``: they stop after wp-config.php, so broken plugins cannot stop them."""
    verb = args.words[1] if len(args.words) > 1 else ""
    site.load_config()
    if not site.has_db():
        error("Error establishing a database connection.")
    target = args.words[2] if len(args.words) > 2 else ""
    if verb == "export":
        target = target or f"wordpress-{time.strftime('%Y-%m-%d')}-{os.urandom(4).hex()[:7]}.sql"
        try:
            with open(target, "w", encoding="utf-8") as dump:
                if site.sqlite.exists():
                    with sqlite3.connect(site.sqlite) as db:
                        for line in db.iterdump():
                            dump.write(line + "\n")
                else:
                    dump.write("-- wpsim-json\n" + json.dumps(site._json()) + "\n")
                filler = site.content / "database" / "wpsim-dbsize"
                if filler.exists():  # a database larger than the files suggest
                    chunk = "-- " + "x" * 1020 + "\n"
                    for _ in range(int(filler.read_text().strip() or 0) // 1024):
                        dump.write(chunk)
                dump.write(f"-- Dump completed on {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        except OSError as exc:
            err(f"mysqldump: Got errno {exc.errno} on write")
            raise Exit(2) from None
        if args.has("porcelain"):
            out(target + "\n")
        else:
            success(args, f"Exported to '{target}'.")
    elif verb == "import":
        target = target or "wordpress.sql"
        try:
            text = Path(target).read_text(encoding="utf-8")
        except OSError:
            error(f"Import file missing or not readable: {target}")
        if text.startswith("-- wpsim-json\n"):
            site.jsondb.write_text(json.dumps(json.loads(text.splitlines()[1]), indent=1))
        else:
            fresh = site.sqlite.with_name(".ht.sqlite.import")
            fresh.unlink(missing_ok=True)
            with sqlite3.connect(fresh) as db:
                db.executescript(text)
            os.replace(fresh, site.sqlite)
        success(args, f"Imported from '{target}'.")
    else:
        error(f"'db {verb}' is not a registered subcommand of 'db'. See 'wp help db' for available subcommands.")


def cmd_maintenance(site: Site, args: Args) -> None:
    verb = args.words[1] if len(args.words) > 1 else ""
    site.load_config()
    active = (site.root / ".maintenance").exists()
    if verb == "status":
        out(f"Maintenance mode is {'active' if active else 'not active'}.\n")
    elif verb == "is-active":
        raise Exit(0 if active else 1)
    elif verb == "activate":
        if active and not args.has("force"):
            error("Maintenance mode already activated.")
        log(args, "Enabling Maintenance mode...")
        site.maintenance(True)
        success(args, "Activated Maintenance mode.")
    elif verb == "deactivate":
        if not active:
            error("Maintenance mode already deactivated.")
        log(args, "Disabling Maintenance mode...")
        site.maintenance(False)
        success(args, "Deactivated Maintenance mode.")
    else:
        error(f"'maintenance-mode {verb}' is not a registered subcommand.")


def cmd_option(site: Site, args: Args) -> None:
    site.load_wordpress(args)
    name = args.words[2] if len(args.words) > 2 else ""
    value = site.option(name)
    if value is None:
        error(f"Could not get '{name}' option. Does it exist?")
    out((php_json(value) if args.get("format") == "json" else str(value)) + "\n")


def extension_rows(site: Site, kind: str) -> list[dict[str, Any]]:
    items = site.plugins() if kind == "plugin" else site.themes()
    offline = wporg() is None
    for item in items:
        item["auto_update"] = "off"
        if item["status"] in ("must-use", "dropin"):
            item["update"], item["update_version"] = False, ""
            continue
        newer = [v for v in releases(f"{kind}s", item["name"]) if vkey(v) > vkey(item["version"])]
        newest = max(newer, key=vkey) if newer and not offline else ""
        item["update"] = "available" if newest else "none"
        item["update_version"] = newest
    return items


def cmd_extension(site: Site, args: Args, kind: str) -> None:
    verb = args.words[1] if len(args.words) > 1 else ""
    site.load_wordpress(args)
    if verb == "list":
        items = extension_rows(site, kind)
        for status in [args.get("status")] if args.get("status") else []:
            items = [i for i in items if i["status"] == status]
        fields = ["name", "status", "update", "version", "update_version", "auto_update"]
        render(args, items, fields + (["type"] if kind == "theme" else []))
    elif verb == "update":
        extension_update(site, args, kind)
    elif verb == "is-active":
        name = args.words[2] if len(args.words) > 2 else ""
        raise Exit(0 if any(i["name"] == name and i["status"] == "active" for i in extension_rows(site, kind)) else 1)
    else:
        error(f"'{kind} {verb}' is not a registered subcommand of '{kind}'. See 'wp help {kind}' for available subcommands.")


def extension_update(site: Site, args: Args, kind: str) -> None:
    names = args.words[2:]
    if not names and not args.has("all"):
        error(f"Please specify one or more {kind}s, or use --all.")
    if args.has("minor") and args.has("patch"):
        error("--minor and --patch cannot be used together.")
    fmt = args.get("format", "table")
    if fmt in ("json", "csv"):
        args.quiet = True
    items = {i["name"]: i for i in extension_rows(site, kind)}
    failures = 0
    for name in names:
        if name not in items:
            warning(args, f"The '{name}' {kind} could not be found.")
            failures += 1
    candidates = [items[n] for n in (names or items) if n in items and items[n]["update"] not in ("none", False)]
    if args.has("minor") or args.has("patch"):
        allowed = ("patch",) if args.has("patch") else ("patch", "minor")
        picked = []
        for item in candidates:
            options = [v for v in releases(f"{kind}s", item["name"])
                       if stable(v) and semver_name(v, item["version"]) in allowed]
            if options:
                picked.append({**item, "update_version": max(options, key=vkey)})
        candidates = picked
    excluded = set((args.get("exclude") or "").split(",")) - {""}
    candidates = [c for c in candidates if c["name"] not in excluded]
    if args.has("dry-run"):
        if not candidates:
            if fmt == "table":
                out(f"No {kind} updates available.\n")
            return
        if fmt == "table":
            out(f"Available {kind} updates:\n")
        render(args, candidates, ["name", "status", "version", "update_version"])
        return
    updated: list[str] = []
    failed = failures
    summary = []
    for item in candidates:
        target = item["update_version"]
        props = releases(f"{kind}s", item["name"]).get(target, {})
        faults = faults_of(props)
        needs_maintenance = item["status"] in ("active", "parent")
        if needs_maintenance:
            log(args, "Enabling Maintenance mode...")
            site.maintenance(True)
        log(args, f"Downloading update from https://downloads.wordpress.org/{kind}/{item['name']}.{target}.zip...")
        log(args, "Unpacking the update...")
        log(args, f"Installing the latest version...\nRemoving the old version of the {kind}...")
        if "slow" in faults:  # a large package: the site stays in maintenance mode a while
            time.sleep(float(os.environ.get("WPSIM_SLOW", "4")))
        ok = install_release(item, target, props)
        if "hangup" in faults:
            hang_up()
        if needs_maintenance and "stuck-maintenance" not in faults:
            log(args, "Disabling Maintenance mode...")
            site.maintenance(False)
        if ok:
            log(args, f"{kind.title()} updated successfully.")
            updated.append(item["name"])
        else:
            warning(args, f"Download failed. Could not unpack the {kind} package.")
            failed += 1
        summary.append({"name": item["name"], "old_version": item["version"], "new_version": target,
                        "status": "Updated" if ok else "Error"})
    if summary:
        render(args, summary, ["name", "old_version", "new_version", "status"])
    total = len(names) if names else len(candidates)
    noun = f"{kind}s" if total != 1 else kind
    if not candidates and not failed:
        if fmt not in ("json", "csv"):
            success(args, f"{kind.title()} already updated." if total == 1 else f"{kind.title()}s already updated.")
        return
    if failed:
        message = (f"No {noun} updated ({failed} failed)." if not updated
                   else f"Only updated {len(updated)} of {total} {noun} ({failed} failed).")
        if fmt not in ("json", "csv"):
            err(f"Error: {message}")
        raise Exit(1)
    success(args, f"Updated {len(updated)} of {total} {noun}.")


def install_release(item: dict[str, Any], target: str, props: dict[str, Any]) -> bool:
    """Replace the installed files with release ``target``; faults come from "wordpress.org"."""
    path: Path = item["path"]
    main = path if path.suffix == ".php" else (path / "style.css" if (path / "style.css").exists() else None)
    if main is None:
        main = next((f for f in sorted(path.glob("*.php")) if "Plugin Name" in read_headers(f, ("Plugin Name",))), None)
    if main is None:
        return False
    faults = faults_of(props)
    if "download" in faults:
        return False
    text = main.read_text("utf-8", "replace")
    text = re.sub(r"^([ \t/*#@]*Version:).*$", rf"\g<1> {target}", text, count=1, flags=re.MULTILINE)
    if "halfway" in faults:  # the new files were only half copied: the main file is gone
        main.unlink()
        for leftover in main.parent.glob("*.txt"):
            leftover.unlink()
        return False
    code_file = main if main.suffix == ".php" else main.parent / "functions.php"
    if "fatal" in faults:
        extra = "\nwpsim_boom(); // wpsim:fatal — this release calls a function that does not exist\n"
        if code_file == main:
            text += extra
        else:
            code_file.write_text(code_file.read_text() + extra)
    main.write_text(text)
    return True


def hang_up() -> None:
    """The SSH connection drops mid-update: kill this command's sshd session."""
    import signal

    pid = os.getppid()
    for _ in range(6):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        if name.startswith("sshd"):
            os.kill(pid, signal.SIGKILL)
            time.sleep(1)
            break
        pid = parent
    raise Exit(1)


def main(argv: list[str]) -> int:
    args = Args(argv)
    if os.environ.get("WPSIM_CALLS"):
        with open(os.environ["WPSIM_CALLS"], "a") as calls:
            calls.write(" ".join(argv) + "\n")
    delay = float(os.environ.get("WPSIM_DELAY", "0") or 0)
    if delay:
        time.sleep(delay)
    try:
        if not args.words:
            error("Please specify a command.")
        group = args.words[0]
        if group == "cli":
            cmd_cli(None, args)
            return 0
        path = args.get("path") or os.getcwd()
        site = Site(Path(path))
        handlers: dict[str, Any] = {"core": cmd_core, "db": cmd_db, "maintenance-mode": cmd_maintenance,
                    "option": cmd_option, "plugin": lambda s, a: cmd_extension(s, a, "plugin"),
                    "theme": lambda s, a: cmd_extension(s, a, "theme")}
        handler = handlers.get(group)
        if handler is None:
            error(f"'{group}' is not a registered wp command. See 'wp help' for available commands.")
        handler(site, args)
    except Exit as done:
        sys.stdout.flush()
        return done.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
