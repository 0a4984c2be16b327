#!/usr/bin/env python3
"""A stand-in for WP-CLI, for the demo fleet and the tests; never used on a client site.

It works on a WordPress-shaped folder the way WP-CLI does: the core version from
``wp-includes/version.php``, plugins from their PHP headers, themes from ``style.css``, the
options from the site's database (the real SQLite file of a SQLite install, else a JSON file).
It answers as the real WP-CLI 2.12.0 does in the transcripts under ``tests/data/wpcli`` (a test
replays them), including the ugly parts: an option a command does not have is a parameter error;
a plugin or theme that fatals (``wpsim:fatal`` in its code) makes every command that loads it exit
1 with WordPress's fatal-error handler on (255 with it off, or for a fatal in wp-config.php);
``core is-installed`` loads no plugin or theme; ``wpsim:notice`` prints a PHP notice on stdout
before the JSON; ``--format=json`` switches ``plugin|theme update`` to the quiet logger; ``db
export`` shells out to ``mariadb-dump`` (so it cannot work on an SQLite site) and ``sqlite
export|import`` exist only with the sqlite-command package (``$WPSIM_SQLITE_COMMAND=1``).

The database is the site's MariaDB/MySQL (through the ``mariadb`` client, with wp-config.php's
credentials), its SQLite file (with the SQLite integration's ``db.php`` drop-in), or for the
demo's WordPress-shaped folders a JSON file.

"wordpress.org" is a JSON file named by ``$WPSIM_WPORG``:
``{"core": ["6.5.5"], "plugins": {"akismet": {"5.4.0": {}, "6.0.0": {"fault": "fatal"}}}, "themes": {}}``;
a release may also say ``"requires_php": "9.0"`` (offered as ``unavailable``) or ``"folder":
"hello-dolly"`` (a single-file plugin that moves into that folder, as Hello Dolly does).
``$WPSIM_WPORG_DOWN=1`` makes "wordpress.org" unreachable; ``$WPSIM_DOWNLOADS`` is the base of the
package URLs it offers.
``$WPSIM_DELAY`` adds a bootstrap delay in seconds; ``$WPSIM_CALLS`` names a file that gets one
line per invocation. ``$WPSIM_PAUSE`` names a file for fault-injection tests: the first invocation
whose command line contains the file's text (the Nth one, when a second line says N) renames it to ``<file>.hit``, sleeps
``$WPSIM_PAUSE_SECONDS`` (default 3) before doing its work, and touches ``<file>.done`` after it.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import phpserialize

CLI_VERSION = "2.12.0"
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


def config_constants(text: str) -> dict[str, str]:
    """``define( 'NAME', value )`` lines of wp-config.php: quoted strings unquoted, others raw."""
    found: dict[str, str] = {}
    for name, value in re.findall(r"define\(\s*['\"](\w+)['\"]\s*,\s*(.+?)\s*\);", text):
        # PHP keeps the first define of a constant (a second one only warns)
        found.setdefault(name, value[1:-1] if value[:1] in "'\"" and value[-1:] == value[:1] else value)
    return found


class Fatal(Exception):
    """PHP died while loading code: a plugin, a theme, or wp-config.php."""

    def __init__(self, file: Path, name: str, in_config: bool = False):
        self.file, self.name, self.in_config = file, name, in_config


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

    def config_text(self) -> str:
        try:
            return (self.root / "wp-config.php").read_text("utf-8", "replace")
        except OSError:
            return ""

    def constants(self) -> dict[str, str]:
        return config_constants(self.config_text())

    def _prefix(self) -> str:
        match = re.search(r"\$table_prefix\s*=\s*'([^']*)'", self.config_text())
        return match.group(1) if match else "wp_"

    # the database
    def is_sqlite(self) -> bool:
        """The SQLite integration's drop-in is in place: WordPress talks to an SQLite file."""
        dropin = self.content / "db.php"
        return dropin.exists() and "sqlite" in dropin.read_text("utf-8", "replace").lower()

    def engine(self) -> str:
        if self.is_sqlite():
            return "sqlite"
        if self.jsondb.exists() or not self.constants().get("DB_NAME"):
            return "json"
        return "mysql"

    def option(self, name: str) -> Any:
        engine = self.engine()
        if engine == "json":
            return self._json().get(name)
        if engine == "sqlite":
            with sqlite3.connect(self.sqlite) as db:
                row = db.execute(f"SELECT option_value FROM {self._prefix()}options WHERE option_name = ?",
                                 (name,)).fetchone()
            return None if row is None else php_unserialize(row[0])
        rows = self.mysql(f"SELECT option_value FROM {self._prefix()}options WHERE option_name = {sql_quote(name)}")
        return None if not rows else php_unserialize(rows[0])

    def option_names(self, autoload: str | None = None) -> list[str]:
        """Option names, only the autoloaded ("yes") or the others ("no") when asked."""
        engine = self.engine()
        if engine == "json":
            names = sorted(self._json())
            transient = [n for n in names if n.startswith(("_transient_", "_site_transient_"))]
            return {None: names, "yes": [n for n in names if n not in transient], "no": transient}[autoload]
        table = f"{self._prefix()}options"
        where = {None: "", "yes": " WHERE autoload IN ('yes', 'on', 'auto-on', 'auto')",
                 "no": " WHERE autoload NOT IN ('yes', 'on', 'auto-on', 'auto')"}[autoload]
        if engine == "sqlite":
            with sqlite3.connect(self.sqlite) as db:
                return [r[0] for r in db.execute(f"SELECT option_name FROM {table}{where} ORDER BY option_name")]
        return self.mysql(f"SELECT option_name FROM {table}{where} ORDER BY option_name")

    def cells(self, all_tables: bool) -> list[Cell]:
        """Every text cell of the site's tables (``all_tables``: every table with the prefix, else WordPress's own)."""
        prefix = self._prefix()
        engine = self.engine()
        if engine == "json":
            return [Cell(f"{prefix}options", "option_value", "option_id", str(n), php_serialized(value), name)
                    for n, (name, value) in enumerate(self._json().items(), start=1)]
        if engine == "mysql":
            return self._mysql_cells(prefix, all_tables)
        found = []
        with sqlite3.connect(self.sqlite) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                      if r[0].startswith(prefix) and (all_tables or r[0][len(prefix):] in CORE_TABLES)]
            for table in tables:
                columns = list(db.execute(f'PRAGMA table_info("{table}")'))
                key = next((c[1] for c in columns if c[5]), columns[0][1])
                texts = [c[1] for c in columns if "CHAR" in c[2].upper() or "TEXT" in c[2].upper() or not c[2]]
                if not texts:
                    continue
                listed = ", ".join(f'"{c}"' for c in texts)
                for row in db.execute(f'SELECT "{key}", {listed} FROM "{table}"'):
                    found += [Cell(table, column, key, str(row[0]), value)
                              for column, value in zip(texts, row[1:], strict=True)
                              if isinstance(value, str) and column != key]
        return found

    def _mysql_cells(self, prefix: str, all_tables: bool) -> list[Cell]:
        """As the SQLite path, through the ``mariadb`` client; values travel hex-encoded (newlines, tabs)."""
        found = []
        tables = [t for t in self.mysql("SHOW TABLES") if t.startswith(prefix)
                  and (all_tables or t[len(prefix):] in CORE_TABLES)]
        for table in tables:
            columns = [line.split("\t") for line in self.mysql(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_KEY FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
                f" AND TABLE_NAME = {sql_quote(table)} ORDER BY ORDINAL_POSITION")]
            key = next((c[0] for c in columns if c[2] == "PRI"), columns[0][0])
            texts = [c[0] for c in columns if c[1] in ("char", "varchar", "tinytext", "text", "mediumtext", "longtext")
                     and c[0] != key]
            if not texts:
                continue
            listed = ", ".join(f"HEX(CAST(`{c}` AS CHAR))" for c in [key, *texts])
            for line in self.mysql(f"SELECT {listed} FROM `{table}`"):
                values = [None if v == "NULL" else bytes.fromhex(v).decode("utf-8", "replace") for v in line.split("\t")]
                found += [Cell(table, column, key, str(values[0]), value)
                          for column, value in zip(texts, values[1:], strict=True) if value is not None]
        return found

    def rows(self, table: str) -> list[dict[str, str]]:
        """Some columns of every row of a core table (the demo's JSON store has none)."""
        columns = CONTENT_COLUMNS[table]
        engine = self.engine()
        if engine == "json":
            return []
        name = f"{self._prefix()}{table}"
        if engine == "sqlite":
            with sqlite3.connect(self.sqlite) as db:
                return [dict(zip(columns, map(str, row), strict=True))
                        for row in db.execute(f'SELECT {", ".join(columns)} FROM "{name}"')]
        listed = ", ".join(f"HEX(CAST(`{c}` AS CHAR))" for c in columns)
        return [dict(zip(columns, (bytes.fromhex(v).decode("utf-8", "replace") for v in line.split("\t")), strict=True))
                for line in self.mysql(f"SELECT {listed} FROM `{name}`")]

    def write_cell(self, cell: Cell, value: str) -> None:
        if self.engine() == "json":
            self.set_option(str(cell.option), php_unserialize(value))
            return
        if self.engine() == "mysql":
            self.mysql(f"UPDATE `{cell.table}` SET `{cell.column}` = UNHEX('{value.encode().hex()}') "
                       f"WHERE `{cell.key}` = UNHEX('{cell.key_value.encode().hex()}')")
            return
        with sqlite3.connect(self.sqlite) as db:
            db.execute(f'UPDATE "{cell.table}" SET "{cell.column}" = ? WHERE "{cell.key}" = ?', (value, cell.key_value))

    def set_option(self, name: str, value: Any, *, keep_autoload: bool = False) -> None:
        engine = self.engine()
        if engine == "json":
            with self.json_lock():  # WP-CLI processes of one site may run side by side: no lost update
                data = self._json()
                data[name] = value.__php_vars__ if isinstance(value, phpserialize.phpobject) else value
                self.write_json(data)
            return
        stored = value if isinstance(value, str) else php_serialize(value)
        table = f"{self._prefix()}options"
        if keep_autoload and self.option(name) is not None:  # as update_option: the row keeps its autoload
            if engine == "sqlite":
                with sqlite3.connect(self.sqlite) as db:
                    db.execute(f"UPDATE {table} SET option_value = ? WHERE option_name = ?", (stored, name))
            else:
                self.mysql(f"UPDATE {table} SET option_value = {sql_quote(stored)} WHERE option_name = {sql_quote(name)}")
            return
        if engine == "sqlite":
            with sqlite3.connect(self.sqlite) as db:
                db.execute(f"DELETE FROM {table} WHERE option_name = ?", (name,))
                db.execute(f"INSERT INTO {table} (option_name, option_value, autoload) VALUES (?, ?, 'no')",
                           (name, stored))
            return
        self.mysql(f"REPLACE INTO {table} (option_name, option_value, autoload) "
                   f"VALUES ({sql_quote(name)}, {sql_quote(stored)}, 'no')")

    def mysql(self, sql: str) -> list[str]:
        """Run SQL with the ``mariadb`` client and wp-config.php's credentials; one string a row."""
        done = subprocess.run([*mysql_client("mariadb", "mysql"), *self.mysql_args(), "-N", "-B", "-r", "-e", sql],
                              capture_output=True, text=True, env=self.mysql_env(), check=False)
        if done.returncode != 0:
            error("Error establishing a database connection.")
        return [line for line in done.stdout.split("\n") if line != ""]

    def mysql_args(self) -> list[str]:
        const = self.constants()
        host, _, port_or_socket = const.get("DB_HOST", "localhost").partition(":")
        args = ["--no-defaults", f"--user={const.get('DB_USER', '')}"]
        if port_or_socket.startswith("/"):
            args.append(f"--socket={port_or_socket}")
        else:
            args += [f"--host={host}"] + ([f"--port={port_or_socket}"] if port_or_socket else [])
        return args + [const.get("DB_NAME", "")]

    def mysql_env(self) -> dict[str, str]:
        return {**os.environ, "MYSQL_PWD": self.constants().get("DB_PASSWORD", "")}

    @contextlib.contextmanager
    def json_lock(self) -> Iterator[None]:
        with open(self.jsondb.with_name(".wpsim.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def write_json(self, data: dict[str, Any]) -> None:
        """Replaced whole (a reader never sees half a file), as a database commit would be."""
        fresh = self.jsondb.with_name(f".wpsim.{os.getpid()}.json")
        fresh.write_text(json.dumps(data, indent=1))
        os.replace(fresh, self.jsondb)

    def _json(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.jsondb.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def has_db(self) -> bool:
        engine = self.engine()
        if engine == "sqlite":
            return self.sqlite.exists()
        return self.jsondb.exists() if engine == "json" else True

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
        found.sort(key=lambda p: (p["title"].lower(), p["file"]))  # WordPress sorts plugins by name
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

    def bootstrap_error(self) -> str | None:
        """What stops WP-CLI before any site code runs: no WordPress, no config, no database."""
        if not (self.root / "wp-includes" / "version.php").exists():
            return ("Error: This does not seem to be a WordPress installation.\nThe used path is: "
                    f"{self.root}/\nPass --path=`path/to/wordpress` or run `wp core download`.")
        if not (self.root / "wp-config.php").exists():
            return "Error: 'wp-config.php' not found.\nEither create one manually or use `wp config create`."
        if not self.has_db():
            return "Error: Error establishing a database connection."
        return None

    def code_to_load(self, skip_plugins: str | bool = False, skip_themes: bool = False) -> list[tuple[str, Path]]:
        """The PHP files WordPress loads, in order; ``--skip-plugins[=a,b]`` and ``--skip-themes`` drop some."""
        code: list[tuple[str, Path]] = [("core", self.root / "wp-includes" / "wpsim-broken.php")]
        code += [(p.stem, p) for p in sorted((self.content / "mu-plugins").glob("*.php"))]
        if skip_plugins is not True:
            skipped = set(str(skip_plugins).split(",")) if skip_plugins else set()
            code += [(p["name"], p["path"]) for p in self.plugins()
                     if p["status"] == "active" and p["name"] not in skipped]
        if not skip_themes:
            code += [(t["name"], t["path"] / "functions.php") for t in self.themes() if t["status"] in ("active", "parent")]
        return code

    def boot(self, skip_plugins: str | bool = False, skip_themes: bool = False) -> list[str]:
        """Load WordPress as WP-CLI does; raises ``Fatal``; returns the PHP notices printed on stdout."""
        if "wpsim:fatal" in self.config_text():
            raise Fatal(self.root / "wp-config.php", "wp-config", in_config=True)
        notices = []
        for name, file in self.code_to_load(skip_plugins, skip_themes):
            try:
                text = file.read_text("utf-8", "replace")
            except OSError:
                continue
            if "wpsim:notice" in text:
                notices.append(f"\nNotice: Undefined variable $wpsim in {file} on line 3\n")
            if "wpsim:fatal" in text:
                raise Fatal(file, name)
        return notices

    def boot_problem(self, skip_plugins: str | bool = False, skip_themes: bool = False) -> tuple[int, str, list[str]]:
        """What booting WordPress would do: (exit code, stderr text, notices printed on stdout)."""
        problem = self.bootstrap_error()
        if problem:
            return 1, problem, []
        try:
            notices = self.boot(skip_plugins, skip_themes)
        except Fatal as fatal:
            return self.fatal_exit(fatal), fatal_text(fatal, self.fatal_handler_on() and not fatal.in_config), []
        return 0, "", notices

    def fatal_handler_on(self) -> bool:
        return self.constants().get("WP_DISABLE_FATAL_ERROR_HANDLER", "false").lower() != "true"

    def fatal_exit(self, fatal: Fatal) -> int:
        # WordPress's handler (on by default since 5.2) ends the request cleanly: WP-CLI exits 1
        return 1 if self.fatal_handler_on() and not fatal.in_config else 255

    def load_wordpress(self, args: Args, *, plugins: bool = True) -> None:
        """What booting WordPress costs and risks: config, database, plugin and theme code."""
        skip_plugins: str | bool = args.flags.get("skip-plugins", False) if plugins else True
        code, message, notices = self.boot_problem(skip_plugins, bool(args.flags.get("skip-themes")) or not plugins)
        for notice in notices:
            out(notice)
        if code:
            err(message)
            raise Exit(code)

    def load_config(self) -> None:
        """WP-CLI's db commands stop after wp-config.php: no plugin code runs (a fatal in it still kills)."""
        self.core_version()
        if not (self.root / "wp-config.php").exists():
            error("'wp-config.php' not found.\nEither create one manually or use `wp config create`.")
        if "wpsim:fatal" in self.config_text():
            err(fatal_text(Fatal(self.root / "wp-config.php", "wp-config", in_config=True), False))
            raise Exit(255)

    # maintenance mode, as WP_Upgrader::maintenance_mode writes it
    def maintenance(self, on: bool) -> None:
        marker = self.root / ".maintenance"
        if on:
            marker.write_text(f"<?php $upgrading = {int(time.time())}; ?>")
        elif marker.exists():
            marker.unlink()


def fatal_text(fatal: Fatal, handler: bool) -> str:
    """stderr of a PHP fatal as the CLI SAPI prints it, then WordPress's handler's message."""
    line = 3
    where = (f"phar:///opt/wp-cli/wp-cli.phar/vendor/wp-cli/wp-cli/php/WP_CLI/Runner.php(1334) : eval()'d code:{line}"
             if fatal.in_config else f"{fatal.file}:{line}")
    function = f"wpsim_{re.sub(r'[^a-z0-9]', '_', fatal.name.lower())}_boom"
    trace = (f"Uncaught Error: Call to undefined function {function}() in {where}\nStack trace:\n"
             f"#0 wp-settings.php(2): include_once()\n#1 {{main}}\n"
             f"  thrown in {fatal.file} on line {line}")
    text = f"PHP Fatal error:  {trace}\nFatal error: {trace}"
    if handler:
        text += ("\nError: There has been a critical error on this website.Learn more about troubleshooting "
                 "WordPress. There has been a critical error on this website.")
    return text


def sql_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def mysql_client(*names: str) -> list[str]:
    """The first of ``names`` on PATH, as ``/usr/bin/env NAME`` the way WP-CLI calls it."""
    for name in names:
        if shutil.which(name):
            return [name]
    return [names[-1]]


# -- PHP serialization (options and transients are stored as PHP writes them) ---------------------

def php_unserialize(text: Any) -> Any:
    if not isinstance(text, str) or not re.match(r"^([aisbdN]:|O:\d)", text):
        return text
    try:
        value = phpserialize.loads(text.encode(), decode_strings=True, object_hook=_object)
    except ValueError:
        return text
    return _plain(value)


def _object(name: str, data: dict[Any, Any]) -> dict[Any, Any]:
    return dict(data)


def _plain(value: Any) -> Any:
    """PHP arrays with keys 0..n-1 as lists, the rest as dicts, all the way down."""
    if isinstance(value, dict):
        items = {k: _plain(v) for k, v in value.items()}
        return list(items.values()) if list(items) == list(range(len(items))) and items else items
    return value


def php_serialize(value: Any) -> str:
    return str(phpserialize.dumps(value).decode())


# -- "wordpress.org" -------------------------------------------------------------------------------

def wporg() -> dict[str, Any] | None:
    path = os.environ.get("WPSIM_WPORG")
    if not path or os.environ.get("WPSIM_WPORG_DOWN"):
        return None
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data


def ask_wordpress_org() -> None:
    """One request of the host's to wordpress.org: ``WPSIM_WPORG_HANG`` seconds where it hangs."""
    hang = float(os.environ.get("WPSIM_WPORG_HANG") or 0)
    if hang:
        time.sleep(hang)


def wporg_standing(slug: str, dated: bool) -> dict[str, str]:
    """``wporg_status`` and ``wporg_last_updated`` as WP-CLI 2.10–2.12 compute them: the plugin API
    answering makes it "active" (enough when no date is asked); otherwise, or for the date, the
    plugin's Trac log is read: a 404 leaves both empty (never hosted); any other answer — a failed
    request included — says "closed" unless the API answered. A host that reaches nothing therefore
    calls every plugin "closed", with no date."""
    repo = wporg()
    ask_wordpress_org()
    hosted = repo is not None and slug in repo.get("plugins", {}) and slug not in (repo.get("closed") or {}).get(
        "plugins", {})
    status = "active" if hosted else ""
    if hosted and not dated:
        return {"wporg_status": status, "wporg_last_updated": ""}
    ask_wordpress_org()
    if repo is None:
        return {"wporg_status": status or "closed", "wporg_last_updated": ""}
    commits = repo.get("trac") or {}
    if slug not in commits and slug not in repo.get("plugins", {}):
        return {"wporg_status": status, "wporg_last_updated": ""}  # Trac: 404, never on wordpress.org
    return {"wporg_status": status or "closed", "wporg_last_updated": str(commits.get(slug, "2026-01-15"))}


def releases(kind: str, name: str) -> dict[str, dict[str, Any]]:
    repo = wporg() or {}
    entry = repo.get(kind, {}) if kind == "core" else repo.get(kind, {}).get(name, {})
    if isinstance(entry, list):
        return {v: {} for v in entry}
    return dict(entry)


def downloads() -> str:
    return os.environ.get("WPSIM_DOWNLOADS", "https://downloads.wordpress.org").rstrip("/")


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


def installable(props: dict[str, Any]) -> bool:
    """The release's PHP requirement is met on this PHP (else WordPress offers it as "unavailable")."""
    needed = props.get("requires_php")
    return not needed or vkey(php_version()) >= vkey(str(needed))


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


# -- what each command accepts (WP-CLI 2.12's synopses); anything else is a parameter error ----------

GLOBAL_OPTIONS = {"path", "url", "ssh", "http", "user", "skip-plugins", "skip-themes", "skip-packages", "require",
                  "exec", "context", "color", "no-color", "debug", "prompt", "quiet", "allow-root"}
LIST_FILTERS = {"name", "status", "update", "version", "update_version", "auto_update", "title", "description",
                "file", "author", "update_package", "update_id", "tested_up_to", "requires", "requires_php"}
ANY = None  # db export/import hand unknown options on to mysqldump / mysql
SYNOPSIS: dict[str, set[str] | None] = {
    "cli info": {"format"}, "cli version": set(), "cli has-command": set(),
    "core version": {"extra"},
    "core check-update": {"minor", "major", "force-check", "field", "fields", "format"},
    "core update": {"minor", "version", "force", "locale", "insecure"},
    "core update-db": {"network", "dry-run"},
    "core is-installed": {"network"},
    "db export": ANY, "db import": ANY,
    "maintenance-mode activate": {"force"}, "maintenance-mode deactivate": set(),
    "maintenance-mode status": set(), "maintenance-mode is-active": set(),
    "option get": {"format"}, "option update": {"autoload", "format"},
    "config set": {"add", "raw", "anchor", "placement", "separator", "type", "config-file"},
    "config delete": {"type", "config-file"}, "config has": {"type", "config-file"},
    "rewrite flush": {"hard"}, "cache flush": set(),
    "post list": {"field", "fields", "format", "post_type", "post_status"},
    "user list": {"field", "fields", "format", "role"},
    "comment list": {"field", "fields", "format", "status"},
    "plugin list": {"field", "fields", "format", "status", "skip-update-check", "recently-active"} | LIST_FILTERS,
    "theme list": {"field", "fields", "format", "status", "skip-update-check"} | LIST_FILTERS,
    "plugin update": {"all", "exclude", "minor", "patch", "format", "version", "dry-run", "insecure",
                      "auto-update-indicated"},
    "theme update": {"all", "exclude", "minor", "patch", "format", "version", "dry-run", "insecure"},
    "plugin is-active": {"network"}, "theme is-active": set(),
    "plugin activate": {"all", "exclude", "network"}, "plugin deactivate": {"uninstall", "all", "exclude", "network"},
    "theme activate": set(),
    "transient get": {"format", "network"},
    "config get": {"type", "format"},
    "search-replace": {"dry-run", "network", "all-tables-with-prefix", "all-tables", "export", "export_insert_size",
                       "skip-tables", "skip-columns", "include-columns", "precise", "recurse-objects", "verbose",
                       "regex", "regex-flags", "regex-delimiter", "regex-limit", "format", "report",
                       "report-changed-only", "log", "before_context", "after_context"},
    "db search": {"network", "all-tables-with-prefix", "all-tables", "before_context", "after_context", "regex",
                  "regex-flags", "regex-delimiter", "table_column_once", "one_line", "matches_only", "stats",
                  "table_column_color", "id_color", "match_color", "fields", "format"},
    "core verify-checksums": {"include-root", "version", "locale", "insecure", "exclude"},
    "cron event": {"fields", "field", "format"} | LIST_FILTERS,  # ``cron event list``
    "option list": {"search", "exclude", "autoload", "transients", "unserialize", "field", "fields", "format",
                    "orderby", "order"},
    "sqlite export": {"tables", "exclude_tables", "porcelain"}, "sqlite import": set(),
}
GROUPS = {"cli", "core", "db", "maintenance-mode", "option", "plugin", "theme", "transient", "sqlite", "config", "cron",
          "search-replace", "rewrite", "cache", "post", "user", "comment"}


def check_parameters(args: Args) -> None:
    """Exit as WP-CLI does on an unknown command, subcommand or option."""
    group = args.words[0]
    if group not in GROUPS or (group == "sqlite" and not sqlite_command(args)):
        error(f"'{group}' is not a registered wp command. See 'wp help' for available commands.")
    verb = args.words[1] if len(args.words) > 1 else ""
    name = group if group == "search-replace" else f"{group} {verb}"
    if name not in SYNOPSIS:
        error(f"'{verb}' is not a registered subcommand of '{group}'. See 'wp help {group}' for available subcommands.")
    allowed = SYNOPSIS[name]
    if allowed is not ANY:
        unknown = [key for key in args.flags if key not in allowed and key not in GLOBAL_OPTIONS]
        if unknown:
            error("Parameter errors:\n" + "\n".join(f" unknown --{key} parameter" for key in unknown))


def sqlite_command(args: Args) -> bool:
    """The wp-cli/sqlite-command package is installed (or ``--require``d for this call)."""
    return bool(os.environ.get("WPSIM_SQLITE_COMMAND")) or "sqlite-command" in str(args.flags.get("require", ""))


# -- commands -----------------------------------------------------------------------------------

def cmd_cli(site: Site | None, args: Args) -> None:
    verb = args.words[1]
    if verb == "version":
        out(f"WP-CLI {CLI_VERSION}\n")
        return
    if verb == "has-command":
        wanted = " ".join(args.words[2:]).split()
        known = " ".join(wanted) in SYNOPSIS or (len(wanted) == 1 and wanted[0] in GROUPS)
        raise Exit(0 if known and (wanted[:1] != ["sqlite"] or sqlite_command(args)) else 1)
    mysql = mysql_client("mariadb", "mysql")[0]
    info: dict[str, Any] = {"system_os": "Linux", "shell": "/bin/sh", "php_binary_path": shutil.which("php") or "/usr/bin/php",
            "php_version": php_version(), "php_ini_used": "",
            "mysql_binary_path": shutil.which(mysql) or "", "mysql_version": "", "sql_modes": [],
            "wp_cli_dir_path": "phar://wp-cli.phar/vendor/wp-cli/wp-cli", "wp_cli_vendor_path": "phar://wp-cli.phar/vendor",
            "wp_cli_phar_path": "phar:///opt/wp-cli/wp-cli.phar", "wp_cli_packages_dir_path": None,
            "wp_cli_cache_dir_path": "", "global_config_path": False, "project_config_path": False,
            "wp_cli_version": CLI_VERSION}
    if args.get("format") == "json":
        out(php_json(info) + "\n")
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
    verb = args.words[1]
    if verb == "version":
        version = site.core_version()
        if args.has("extra"):
            tinymce = site.version_var("tinymce_version")
            readable = re.sub(r"^(\d)(\d+)-.*$", r"\1.\2", tinymce)
            out(f"WordPress version: {version}\nDatabase revision: {site.version_var('wp_db_version')}\n"
                f"TinyMCE version:   {readable} ({tinymce})\nPackage language:  en_US\n")
        else:
            out(version + "\n")
        return
    # is-installed runs with WP_INSTALLING defined: WordPress loads no plugin and no theme
    site.load_wordpress(args, plugins=verb != "is-installed")
    if verb == "check-update":
        core_check_update(site, args)
    elif verb == "verify-checksums":
        core_verify_checksums(site, args)
    elif verb == "update":
        core_update(site, args)
    elif verb == "update-db":
        core_update_db(site, args)
    else:
        raise Exit(0 if site.option("siteurl") else 1)


def core_offers(site: Site) -> list[dict[str, str]]:
    current = site.core_version().removesuffix("-src")
    best: dict[str, str] = {}
    for version in releases("core", ""):
        kind = semver_name(version, current)
        label = {"patch": "minor", "minor": "major", "major": "major"}.get(kind)
        if label and (label not in best or vkey(version) > vkey(best[label])):
            best[label] = version
    return [{"version": best[t], "update_type": t, "package_url": f"{downloads()}/release/wordpress-{best[t]}.zip"}
            for t in ("minor", "major") if t in best]


def core_check_update(site: Site, args: Args) -> None:
    fmt = args.get("format", "table")
    if wporg() is None:  # WP-CLI 2.12 says nothing of it: offline looks exactly like up to date
        store_transient(site, "update_core", {"updates": [], "version_checked": site.core_version()})
        if fmt == "table":
            success(args, "WordPress is at the latest version.")
            return
        render(args, [], ["version", "update_type", "package_url"])
        return
    offers = core_offers(site)
    stored = [{"response": "upgrade", "version": o["version"], "current": o["version"],
               "download": o["package_url"]} for o in offers]
    store_transient(site, "update_core", {"updates": stored or [{"response": "latest"}],
                                          "version_checked": site.core_version()}, reached=True)
    for only in ("major", "minor"):
        if args.has(only):
            offers = [o for o in offers if o["update_type"] == only]
    if not offers and fmt == "table":
        success(args, "WordPress is at the latest version.")
        return
    render(args, offers, ["version", "update_type", "package_url"])


def core_update(site: Site, args: Args) -> None:
    """Text only: ``core update`` has no ``--format`` (the parameter check refuses it)."""
    current = site.core_version()
    offers = {o["update_type"]: o["version"] for o in core_offers(site)}
    target = args.get("version") or (offers.get("minor") if args.has("minor") else offers.get("major") or offers.get("minor"))
    if not target:
        success(args, "WordPress is at the latest minor release." if args.has("minor") else "WordPress is up to date.")
        return
    if vkey(target) <= vkey(current) and not args.has("force"):
        success(args, "WordPress is up to date.")
        return
    log(args, f"Updating to version {target} (en_US)...")
    log(args, f"Downloading update from https://wordpress.org/wordpress-{target}.zip...")
    props = releases("core", "").get(target)
    if props is None or wporg() is None:
        error(f"Failed to get url 'https://wordpress.org/wordpress-{target}.zip': cURL error 6: Could not resolve "
              "host: wordpress.org." if wporg() is None else "Download failed.: Not Found")
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
    if (wporg() or {}).get("checksums") is False:
        warning(args, f"Checksums not available for WordPress {current}/en_US. Please cleanup files manually.")
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
    site.set_option("db_version", str(wanted) if site.engine() != "json" else wanted)
    success(args, f"WordPress database upgraded successfully from db version {stored} to {wanted}.")


def cmd_db(site: Site, args: Args) -> None:
    """``db export`` / ``db import`` stop after wp-config.php (no plugin runs) and shell out to the
    MariaDB/MySQL client tools, as WP-CLI does — which cannot reach an SQLite site's database."""
    verb = args.words[1]
    if verb == "search":
        db_search(site, args)
        return
    site.load_config()
    target = args.words[2] if len(args.words) > 2 else ""
    if verb == "export":
        target = target or f"{site.constants().get('DB_NAME', 'wordpress')}-{time.strftime('%Y-%m-%d')}.sql"
        dump_database(site, target)
        if target == "-":
            return
        if args.has("porcelain"):
            out(target + "\n")
        else:
            success(args, f"Exported to '{target}'.")
        return
    target = target or "wordpress.sql"
    if not Path(target).is_file():
        error(f"Import file missing or not readable: {target}")
    import_database(site, target)
    success(args, f"Imported from '{target}'.")


def mysql_unreachable(tool: str) -> NoReturn:
    """What WP-CLI prints when the MySQL tools cannot reach a database (an SQLite site has none)."""
    client, dumper = mysql_client("mariadb", "mysql")[0], mysql_client("mariadb-dump", "mysqldump")[0]
    if not shutil.which(client):
        missing = f"/usr/bin/env: ‘{tool}’: No such file or directory"
        err(f"{missing}\nWarning: Failed to get current character set of the posts table. Reason: "
            f"/usr/bin/env: ‘mysql’: No such file or directory\n\n{missing}")
        raise Exit(127)
    socket_error = "Can't connect to local server through socket '/run/mysqld/mysqld.sock' (2)"
    err(f"Warning: Failed to get current character set of the posts table. Reason: ERROR 2002 (HY000): "
        f"{socket_error}\n\n{dumper if tool == 'mysqldump' else client}: Got error: 2002: \"{socket_error}\" "
        "when trying to connect")
    raise Exit(2 if tool == "mysqldump" else 1)


def dump_database(site: Site, target: str) -> None:
    engine = site.engine()
    if engine == "sqlite":
        mysql_unreachable("mysqldump")
    try:  # "-": to stdout, as ``wp db export -`` does (and then says nothing else)
        with open(target, "w", encoding="utf-8") if target != "-" else contextlib.nullcontext(sys.stdout) as dump:
            if engine == "mysql":
                dump.flush()
                done = subprocess.run([*mysql_client("mariadb-dump", "mysqldump"), *site.mysql_args(),
                                       "--single-transaction", "--quick"], stdout=dump, stderr=subprocess.PIPE,
                                      text=True, env=site.mysql_env(), check=False)
                if done.returncode != 0:
                    err(done.stderr.rstrip())
                    raise Exit(done.returncode)
            else:
                dump.write("-- wpsim-json\n" + json.dumps(site._json()) + "\n")
            filler = site.content / "database" / "wpsim-dbsize"
            if filler.exists():  # a database larger than the files suggest
                chunk = "-- " + "x" * 1020 + "\n"
                for _ in range(int(filler.read_text().strip() or 0) // 1024):
                    dump.write(chunk)
    except OSError as exc:
        err(f"mysqldump: Got errno {exc.errno} on write")
        raise Exit(2) from None


def import_database(site: Site, source: str) -> None:
    engine = site.engine()
    if engine == "sqlite":
        mysql_unreachable("mysql")
    if engine == "json":
        text = Path(source).read_text(encoding="utf-8")
        data = json.loads(text.splitlines()[1])
        if HALFWAY:
            site.write_json(dict(list(data.items())[:len(data) // 2]))
            cut_off()
        site.write_json(data)
        return
    with open(source, "rb") as dump:
        lines = dump.readlines()
    if HALFWAY:
        lines = lines[:len(lines) // 2]
    done = subprocess.run([*mysql_client("mariadb", "mysql"), *site.mysql_args(), "--force"] if HALFWAY else
                          [*mysql_client("mariadb", "mysql"), *site.mysql_args()], input=b"".join(lines),
                          capture_output=True, env=site.mysql_env(), check=False)
    if HALFWAY:
        cut_off()
    if done.returncode != 0:
        err(done.stderr.decode("utf-8", "replace").rstrip())
        raise Exit(done.returncode)


def cmd_sqlite(site: Site, args: Args) -> None:
    """wp-cli/sqlite-command: ``sqlite export|import FILE`` on an SQLite site's database."""
    verb = args.words[1]
    site.load_wordpress(args)
    target = args.words[2] if len(args.words) > 2 else ""
    if verb == "export":
        target = target or "database.sql"
        success(args, "Exporting database...")
        with sqlite3.connect(site.sqlite) as db, open(target, "w", encoding="utf-8") as dump:
            for line in db.iterdump():
                dump.write(line + "\n")
        success(args, f"Export complete. File written to {target}")
        return
    if not Path(target).is_file():
        error(f"Import file missing or not readable: {target}")
    fresh = site.sqlite.with_name(".ht.sqlite.import")
    fresh.unlink(missing_ok=True)
    script = Path(target).read_text(encoding="utf-8")
    with sqlite3.connect(fresh) as db:
        if HALFWAY:  # statements of the first half, then the cut
            statements = script.split(";\n")
            db.executescript(";\n".join(statements[:len(statements) // 2]) + ";\nCOMMIT;")
        else:
            db.executescript(script)
    os.replace(fresh, site.sqlite)
    if HALFWAY:
        cut_off()
    success(args, f"Imported from '{target}'.")


def cmd_maintenance(site: Site, args: Args) -> None:
    verb = args.words[1]
    site.load_wordpress(args)
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
    else:
        if not active:
            error("Maintenance mode already deactivated.")
        log(args, "Disabling Maintenance mode...")
        site.maintenance(False)
        success(args, "Deactivated Maintenance mode.")


CONSTANT_OPTIONS = {"home": "WP_HOME", "siteurl": "WP_SITEURL"}


CONTENT_COLUMNS = {
    "posts": ("ID", "post_type", "post_status", "post_title", "post_name", "post_date"),
    "users": ("ID", "user_login", "display_name", "user_email", "user_registered"),
    "comments": ("comment_ID", "comment_post_ID", "comment_date", "comment_approved", "comment_author",
                 "comment_author_email"),
}
CORE_TABLES = ("commentmeta", "comments", "links", "options", "postmeta", "posts", "term_relationships",
               "term_taxonomy", "termmeta", "terms", "usermeta", "users")


@dataclass(frozen=True)
class Cell:
    table: str
    column: str
    key: str
    key_value: str
    value: str
    option: str | None = None  # the option's name, in the demo's JSON store


def replace_in(value: str, change: Callable[[str], str]) -> str:
    """``change`` applied to the text, or inside PHP-serialized data with every length kept right."""
    if re.match(r"^([aisbdN]:|O:\d)", value):
        try:
            data = phpserialize.loads(value.encode(), decode_strings=True, object_hook=phpserialize.phpobject)
        except ValueError:
            data = None
        if data is not None:
            hits: list[str] = []

            def counted(text: str) -> str:
                changed = change(text)
                if changed != text:
                    hits.append(text)
                return changed

            walked = _walk(data, counted)  # serialized again only when a string in it changed (as WP-CLI does)
            return str(phpserialize.dumps(walked).decode("utf-8", "replace")) if hits else value
    return change(value)


def _walk(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {k: _walk(v, change) for k, v in value.items()}
    if isinstance(value, phpserialize.phpobject):
        value.__php_vars__ = {k: _walk(v, change) for k, v in value.__php_vars__.items()}
    return value


def matcher(args: Args, needle: str) -> re.Pattern[str]:
    return re.compile(needle if args.has("regex") else re.escape(needle))


def cmd_search_replace(site: Site, args: Args) -> None:
    """``search-replace OLD NEW``: cell by cell, serialized data unserialized first; the count is of cells changed."""
    site.load_wordpress(args)
    if len(args.words) < 3:
        error("Please specify search and replace strings.") if len(args.words) < 2 else error("Please specify replace string.")
    old, new = args.words[1], args.words[2]
    pattern = matcher(args, old)
    skip = set((args.get("skip-columns") or "").split(",")) - {""}
    counts: dict[tuple[str, str], int] = {}
    for cell in site.cells(args.has("all-tables-with-prefix") or args.has("all-tables")):
        if cell.column in skip:
            continue
        counts.setdefault((cell.table, cell.column), 0)
        changed = replace_in(cell.value, lambda text: pattern.sub(lambda _: new, text))
        if changed != cell.value:
            counts[(cell.table, cell.column)] += 1
            if not args.has("dry-run"):
                site.write_cell(cell, changed)
    total = sum(counts.values())
    if args.get("format") == "count":
        out(f"{total}\n")
        return
    shown = [(t, c, n) for (t, c), n in sorted(counts.items()) if n or not args.has("report-changed-only")]
    out("Table\tColumn\tReplacements\tType\n" + "".join(f"{t}\t{c}\t{n}\tPHP\n" for t, c, n in shown))
    success(args, f"{total} replacements to be made." if args.has("dry-run") else f"Made {total} replacements.")


def db_search(site: Site, args: Args) -> None:
    """``db search NEEDLE [TABLE...]``: each match with 40 characters of context either side."""
    site.load_wordpress(args)
    needle, tables = args.words[2], args.words[3:]
    fmt = args.get("format")
    if fmt in ("count", "ids") and len(tables) != 1:
        error(f'The "{fmt}" format can only be used for a single table.')
    pattern = matcher(args, needle)
    cells = [c for c in site.cells(args.has("all-tables-with-prefix") or args.has("all-tables") or bool(tables))
             if not tables or c.table in tables]
    hits = [(cell, m) for cell in cells for m in pattern.finditer(cell.value)]
    if fmt == "ids":
        out(" ".join(dict.fromkeys(cell.key_value for cell, _ in hits)))
        return
    if fmt == "count":
        out(f"{len(hits)}\n")
        return
    context = [(cell, cell.value[max(0, m.start() - 40):m.end() + 40]) for cell, m in hits]
    if fmt == "json":
        out(php_json([{"table": c.table, "column": c.column, "match": text, "primary_key_name": c.key,
                       "primary_key_value": c.key_value} for c, text in context]))
        return
    out("".join(f"{c.table}:{c.column}\n{c.key_value}:{text}\n" for c, text in context))


def cmd_config(site: Site, args: Args) -> None:
    """``config get|set|delete|has NAME``: wp-config.php read and edited without loading WordPress."""
    verb = args.words[1]
    name = args.words[2] if len(args.words) > 2 else ""
    constants = config_constants(site.config_text())
    if verb == "set":
        config_set(site, args, name, constants)
        return
    if name == "table_prefix" and verb in ("get", "has"):
        constants = {**constants, name: site._prefix()}
    if verb == "has":
        raise Exit(0 if name in constants else 1)
    if name not in constants:
        error(f"The constant or variable '{name}' is not defined in the 'wp-config.php' file.")
    if verb == "delete":
        text = re.sub(rf"^[ \t]*define\(\s*['\"]{re.escape(name)}['\"]\s*,.*?\);[ \t]*\n?", "", site.config_text(),
                      flags=re.MULTILINE)
        (site.root / "wp-config.php").write_text(text)
        success(args, f"Deleted the constant '{name}' from the 'wp-config.php' file.")
        return
    raw = constants[name]  # quoted strings come unquoted; true/false/numbers raw
    value: Any = {"true": True, "false": False}.get(raw.lower(), raw)
    if args.get("format") == "json":
        out(php_json(value) + "\n")
    else:  # PHP's echo: true is "1", false is ""
        out(("1" if value is True else "" if value is False else str(value)) + "\n")


def config_set(site: Site, args: Args, name: str, constants: dict[str, str]) -> None:
    """As wp-config-transformer: an existing define's value replaced, else one added before "That's all"."""
    if len(args.words) < 4:
        error("Please provide value to set.")
    value = args.words[3]
    raw = args.has("raw")
    php = value if raw else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    text = site.config_text()
    said = f"the raw value '{value}'" if raw else f"the value '{value}'"
    if name in constants:
        text = re.sub(rf"(define\(\s*['\"]{re.escape(name)}['\"]\s*,\s*)(.+?)(\s*\);)",
                      lambda m: m.group(1) + php + m.group(3), text, count=1)
        message = f"Updated the constant '{name}' in the 'wp-config.php' file with {said}."
    else:
        line = f"define( '{name}', {php} );\n"
        anchor = "/* That's all, stop editing!"
        text = text.replace(anchor, line + anchor, 1) if anchor in text else text + "\n" + line
        message = f"Added the constant '{name}' to the 'wp-config.php' file with {said}."
    (site.root / "wp-config.php").write_text(text)
    success(args, message)


def cmd_rewrite(site: Site, args: Args) -> None:
    """``rewrite flush``: WordPress rebuilds its rules from permalink_structure (none: a warning)."""
    site.load_wordpress(args)
    if not site.option("permalink_structure"):
        warning(args, "Rewrite rules are empty, possibly because of a missing permalink_structure option. "
                      "Use 'wp rewrite list' to verify, or 'wp rewrite structure' to update permalink_structure.")
        return
    success(args, "Rewrite rules flushed.")


def cmd_cache(site: Site, args: Args) -> None:
    site.load_wordpress(args)
    success(args, "The cache was flushed.")


def cmd_content(site: Site, args: Args) -> None:
    """``post list``, ``user list``, ``comment list`` (``--format=count`` and plain fields)."""
    site.load_wordpress(args)
    group = args.words[0]
    rows = site.rows({"post": "posts", "user": "users", "comment": "comments"}[group])
    if group == "post":
        types = (args.get("post_type") or "post").split(",")
        wanted = (args.get("post_status") or ("inherit" if types == ["attachment"] else "publish")).split(",")
        rows = [r for r in rows if r.get("post_type") in types
                and (r.get("post_status") in wanted or ("any" in wanted and r.get("post_status") not in ("trash", "auto-draft")))]
    elif group == "comment":
        status = args.get("status") or "all"
        approved = {"all": ("0", "1"), "approve": ("1",), "hold": ("0",), "spam": ("spam",), "trash": ("trash",)}
        rows = [r for r in rows if str(r.get("comment_approved")) in approved.get(status, (status,))]
    fields = {"post": ["ID", "post_title", "post_name", "post_date", "post_status"],
              "user": ["ID", "user_login", "display_name", "user_email", "user_registered"],
              "comment": ["comment_ID", "comment_post_ID", "comment_date", "comment_approved", "comment_author",
                          "comment_author_email"]}[group]
    render(args, rows, fields)


def core_verify_checksums(site: Site, args: Args) -> None:
    """Against "wordpress.org"'s checksums for the installed version (its ``core_checksums``)."""
    version = site.core_version()
    sums = ((wporg() or {}).get("core_checksums") or {}).get(version)
    if not sums:
        error("Couldn't get checksums from WordPress.org.")
    bad = False
    for relative, expected in sorted(sums.items()):
        path = site.root / relative
        if not path.exists():
            warning(args, f"File doesn't exist: {relative}")
            bad = True
        elif hashlib.md5(path.read_bytes()).hexdigest() != expected:
            warning(args, f"File doesn't verify against checksum: {relative}")
            bad = True
    for folder in ("wp-admin", "wp-includes"):
        for path in sorted((site.root / folder).rglob("*")):
            relative = str(path.relative_to(site.root))
            if path.is_file() and relative not in sums:
                warning(args, f"File should not exist: {relative}")
                bad = True
    if bad:
        error("WordPress installation doesn't verify against checksums.")
    success(args, "WordPress installation verifies against checksums.")


def cmd_cron(site: Site, args: Args) -> None:
    """``cron event list``: the events in the ``cron`` option, soonest first."""
    if args.words[2:3] != ["list"]:
        error(f"'{' '.join(args.words[2:3])}' is not a registered subcommand of 'cron event'.")
    site.load_wordpress(args)
    now = time.time()
    rows = []
    scheduled = {k: v for k, v in (site.option("cron") or {}).items() if str(k).isdigit() and isinstance(v, dict)}
    for stamp, hooks in sorted(scheduled.items(), key=lambda kv: int(kv[0])):  # "version" is no event
        for hook, events in hooks.items():
            for event in (events or {}).values():
                interval = int(event.get("interval") or 0) if isinstance(event, dict) else 0
                rows.append({"hook": hook, "next_run_gmt": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(stamp))),
                             "next_run_relative": "now" if float(stamp) <= now else relative_time(float(stamp) - now),
                             "recurrence": relative_time(interval) if interval else "Non-repeating"})
    fields = (args.get("fields") or "hook,next_run_gmt,next_run_relative,recurrence").split(",")
    render(args, rows, fields)


def relative_time(seconds: float) -> str:
    """As WP-CLI words an interval: "1 hour", "12 hours", "1 day"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "now"


def cmd_option(site: Site, args: Args) -> None:
    site.load_wordpress(args)
    if args.words[1:2] == ["list"]:
        option_list(site, args)
        return
    name = args.words[2] if len(args.words) > 2 else ""
    if args.words[1] == "update":
        option_update(site, args, name)
        return
    value = site.constants().get(CONSTANT_OPTIONS.get(name, ""), site.option(name))
    if value is None:
        error(f"Could not get '{name}' option. Does it exist?")
    out((php_json(value) if args.get("format") == "json" else str(value)) + "\n")


def option_update(site: Site, args: Args, name: str) -> None:
    """``option update NAME VALUE``: the stored row, whatever a WP_HOME/WP_SITEURL constant says."""
    if len(args.words) < 4:
        error("Please provide value to update.") if len(args.words) == 3 else error("Please specify the option name.")
    value = args.words[3]
    if site.option(name) == value:
        success(args, f"Value passed for '{name}' option is unchanged.")
        return
    site.set_option(name, value, keep_autoload=True)
    success(args, f"Updated '{name}' option.")


def option_list(site: Site, args: Args) -> None:
    """``option list --autoload=on --format=total_bytes``: the bytes of the autoloaded values."""
    given = args.get("autoload")
    if given is not None and given not in ("on", "off", "yes", "no"):
        error("Value of '--autoload' should be 'on', 'off', 'yes', or 'no'.")
    wanted = {"on": "yes", "yes": "yes", "off": "no", "no": "no"}.get(str(given or ""))
    names = site.option_names(wanted)
    if args.get("format") == "total_bytes":
        out(f"{sum(len(php_serialized(site.option(n))) for n in names)}\n")
        return
    render(args, [{"option_name": n, "option_value": site.option(n)} for n in names], ["option_name", "option_value"])


def php_serialized(value: Any) -> str:
    """As WordPress stores an option value: strings and numbers as they are, the rest serialized."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return "1" if value else ""
    if isinstance(value, int | float):
        return str(value)
    return str(phpserialize.dumps(value).decode("utf-8", "replace"))


def cmd_transient(site: Site, args: Args) -> None:
    """``transient get KEY --network``: the site transients WordPress keeps of its update checks."""
    site.load_wordpress(args)
    key = args.words[2] if len(args.words) > 2 else ""
    prefix = "_site_transient_" if args.has("network") else "_transient_"
    value = site.option(prefix + key)
    if value is None:
        warning(args, f'Transient with key "{key}" is not set.')
        return
    out((php_json(value) if args.get("format") == "json" else str(value)) + "\n")


def store_transient(site: Site, key: str, data: dict[str, Any], *, reached: bool = False) -> None:
    """As ``wp_version_check`` / ``wp_update_plugins`` do: ``last_checked`` is written before asking
    wordpress.org, the answer's fields only when it answered."""
    value = {"last_checked": int(time.time())} | (data if reached or key == "update_core" else {})
    site.set_option(f"_site_transient_{key}", phpserialize.phpobject("stdClass", value))


def fresh(site: Site, kind: str, checked: dict[str, str]) -> bool:
    """The stored update check is under 12 hours old and saw the same installed versions."""
    stored = site.option(f"_site_transient_update_{kind}s")
    value = getattr(stored, "__dict__", stored) if stored is not None else None
    if not isinstance(value, dict):
        return False
    return time.time() - float(value.get("last_checked") or 0) < 12 * 3600 and value.get("checked") == checked


def extension_rows(site: Site, kind: str, args: Args | None = None, *, only_if_stale: bool = False) -> list[dict[str, Any]]:
    """The rows of ``plugin/theme list``; the update transient is refreshed as ``list`` does (always,
    unless ``--skip-update-check``) or, with ``only_if_stale``, as ``update`` does (``wp_update_plugins``:
    only when the stored check is older than 12 hours or the installed versions changed)."""
    items = site.plugins() if kind == "plugin" else site.themes()
    offline = wporg() is None
    checked, response = {}, {}
    for item in items:
        item["auto_update"] = "off"
        if item["status"] in ("must-use", "dropin"):
            item["update"], item["update_version"] = False, ""
            continue
        checked[item["file"]] = item["version"]
        offered = releases(f"{kind}s", item["name"])
        newer = [v for v in offered if vkey(v) > vkey(item["version"])] if not offline else []
        newest = max(newer, key=vkey) if newer else ""
        item["update"] = "none" if not newest else "available" if installable(offered[newest]) else "unavailable"
        item["update_version"] = newest
        if newest:
            response[item["file"]] = {"slug": item["name"], "new_version": newest}
    if (args is None or not args.has("skip-update-check")) and not (only_if_stale and fresh(site, kind, checked)):
        store_transient(site, f"update_{kind}s", {"checked": checked, "response": response, "no_update": {},
                                                   "translations": []}, reached=not offline)
    return items


def cmd_extension(site: Site, args: Args, kind: str) -> None:
    verb = args.words[1]
    site.load_wordpress(args)
    if verb == "list":
        items = extension_rows(site, kind, args)
        wanted = {*(args.get("fields") or "").split(","), args.get("field") or ""}
        if kind == "plugin" and wanted & {"wporg_status", "wporg_last_updated"}:
            for item in items:
                item.update(wporg_standing(item["name"], "wporg_last_updated" in wanted))
        for status in [args.get("status")] if args.get("status") else []:
            items = [i for i in items if i["status"] == status]
        render(args, items, ["name", "status", "update", "version", "update_version", "auto_update"])
    elif verb == "update":
        extension_update(site, args, kind)
    elif verb == "is-active":
        name = args.words[2] if len(args.words) > 2 else ""
        raise Exit(0 if any(i["name"] == name and i["status"] == "active" for i in extension_rows(site, kind)) else 1)
    elif verb in ("activate", "deactivate"):
        set_active(site, args, kind, verb == "activate")


def set_active(site: Site, args: Args, kind: str, on: bool) -> None:
    items = {i["name"]: i for i in (site.plugins() if kind == "plugin" else site.themes())}
    name = args.words[2] if len(args.words) > 2 else ""
    if name not in items:
        error(f"The '{name}' {kind} could not be found.")
    if kind == "theme":
        site.set_option("stylesheet", name)
        site.set_option("template", name)
        success(args, f"Switched to '{items[name]['title']}' theme.")
        return
    active = [f for f in (site.option("active_plugins") or []) if f != items[name]["file"]]
    site.set_option("active_plugins", active + ([items[name]["file"]] if on else []))
    word = "activated" if on else "deactivated"
    log(args, f"Plugin '{name}' {word}.")
    success(args, f"{word.title()} 1 of 1 plugins.")


def extension_update(site: Site, args: Args, kind: str) -> None:
    names = args.words[2:]
    if not names and not args.has("all"):
        error(f"Please specify one or more {kind}s, or use --all.")
    if args.has("minor") and args.has("patch"):
        error("--minor and --patch cannot be used together.")
    fmt = args.get("format", "table")
    if fmt in ("json", "csv"):
        args.quiet = True
    items = {i["name"]: i for i in extension_rows(site, kind, args, only_if_stale=True)}
    failures = 0
    for name in names:
        if name not in items:
            warning(args, f"The '{name}' {kind} could not be found.")
            failures += 1
    offered = [items[n] for n in (names or items) if n in items and items[n]["update"] not in ("none", False)]
    candidates = [c for c in offered if c["update"] == "available" or args.has("minor") or args.has("patch")]
    if args.has("minor") or args.has("patch"):
        allowed = ("patch",) if args.has("patch") else ("patch", "minor")
        picked = []
        unknown = set(((wporg() or {}).get("no_info") or {}).get(f"{kind}s", []))
        for item in candidates:
            ask_wordpress_org()  # WP-CLI asks the plugin API for each slug's versions
            if item["name"] in unknown:  # --minor/--patch need wordpress.org's version list of the slug
                continue
            releases_of = releases(f"{kind}s", item["name"])
            options = [v for v in releases_of if stable(v) and semver_name(v, item["version"]) in allowed
                       and installable(releases_of[v])]
            if options:
                picked.append({**item, "update_version": max(options, key=vkey)})
        candidates = picked
    excluded = set((args.get("exclude") or "").split(",")) - {""}
    candidates = [c for c in candidates if c["name"] not in excluded]
    for item in offered:
        if item not in candidates and item["update"] == "unavailable":
            needed = releases(f"{kind}s", item["name"])[item["update_version"]].get("requires_php")
            warning(args, f"{item['name']}: This update requires PHP version {needed}, but the version installed "
                          f"is {php_version()}.")
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
        log(args, f"Downloading update from {downloads()}/{kind}/{item['name']}.{target}.zip...")
        if "download" not in faults:
            log(args, "Unpacking the update...")
            log(args, f"Installing the latest version...\nRemoving the old version of the {kind}...")
        if "slow" in faults:  # a large package: the site stays in maintenance mode a while
            time.sleep(float(props.get("slow_seconds") or os.environ.get("WPSIM_SLOW", "4")))
        ok = install_release(site, item, target, props)
        if "hangup" in faults:
            hang_up()
        if needs_maintenance and "stuck-maintenance" not in faults:
            log(args, "Disabling Maintenance mode...")
            site.maintenance(False)
        if ok:
            log(args, f"{kind.title()} updated successfully.")
            updated.append(item["name"])
        else:
            warning(args, 'Download failed. "Not Found"')
            failed += 1
        summary.append({"name": item["name"], "old_version": item["version"], "new_version": target,
                        "status": "Updated" if ok else "Error"})
    if summary:
        render(args, summary, ["name", "old_version", "new_version", "status"])
    total = len(names) if names else len(candidates)
    noun = f"{kind}s" if total != 1 else kind
    if not candidates and not failed:
        if offered:  # only releases this site cannot take: nothing was updated
            error(f"No {kind}s updated.")
        if fmt not in ("json", "csv"):
            success(args, f"{kind.title()} already updated." if total == 1 else f"{kind.title()}s already updated.")
        return
    if failed:
        message = (f"No {kind}s updated ({failed} failed)." if not updated
                   else f"Only updated {len(updated)} of {total} {noun} ({failed} failed).")
        error(message)
    success(args, f"Updated {len(updated)} of {total} {noun}.")


PAGE_FAULTS = ("blank-shop", "error-page", "frozen", "hang-pages", "hidden-content", "no-menu")  # demo/web.py renders these


def install_release(site: Site, item: dict[str, Any], target: str, props: dict[str, Any]) -> bool:
    """Replace the installed files with release ``target``; faults come from "wordpress.org"."""
    path: Path = item["path"]
    folder = props.get("folder")
    if folder and path.suffix == ".php" and path.parent.name == "plugins":  # Hello Dolly: hello.php -> hello-dolly/
        moved = path.parent / str(folder) / path.name
        moved.parent.mkdir(exist_ok=True)
        path.rename(moved)
        active = site.option("active_plugins") or []
        if item["file"] in active:
            site.set_option("active_plugins", [f"{folder}/{path.name}" if f == item["file"] else f for f in active])
        path = item["path"] = moved
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
    markers = "".join(f"\n// wpsim:{page_fault}\n" for page_fault in PAGE_FAULTS if page_fault in faults)
    if "hidden-content" in faults:  # on a real WordPress too: a stylesheet in every page's head that hides it all
        markers += ("add_action('wp_head', function () { echo '<style>.wp-site-blocks, main { display: none !important; }"
                    "</style>'; });\n")
    if markers and code_file == main:
        text += markers
    elif markers:  # a theme's code is its functions.php (what the web side reads for them)
        code_file.write_text(code_file.read_text() + markers)
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
    paused = pause_here(argv)
    global HALFWAY
    HALFWAY = fails_halfway(argv)
    try:
        return run_command(args)
    finally:
        if paused is not None:
            paused.with_suffix(".done").touch()


HALFWAY = False  # this invocation's import stops half-way (fault injection)


def fails_halfway(argv: list[str]) -> bool:
    """``WPSIM_FAIL`` names a file holding a text: the first ``db import``/``sqlite import`` whose
    arguments contain it loads half of the dump and then fails, as one cut off by a lost database
    connection (the file is renamed ``.hit``)."""
    name = os.environ.get("WPSIM_FAIL")
    try:
        wanted = Path(name).read_text().strip() if name else ""
    except OSError:
        return False
    if not wanted or wanted not in " ".join(argv) or "import" not in argv:
        return False
    try:
        Path(str(name)).rename(str(name) + ".hit")  # once: the rollback's own import works
    except OSError:
        return False
    return True


def cut_off() -> NoReturn:
    err("ERROR 2013 (HY000) at line 57: Lost connection to server during query")
    raise Exit(1)


def pause_here(argv: list[str]) -> Path | None:
    """The pause file, renamed to ``.hit``, when this invocation is the one it names (see the docstring)."""
    name = os.environ.get("WPSIM_PAUSE")
    if not name:
        return None
    marker = Path(name)
    try:
        wanted, _, nth = marker.read_text().strip().partition("\n")
    except OSError:
        return None
    if not wanted or wanted not in " ".join(argv):
        return None
    counter = marker.with_suffix(".count")
    with open(counter, "a+") as seen:  # the Nth matching invocation (second line of the file; default 1)
        fcntl.flock(seen, fcntl.LOCK_EX)
        seen.write("x")
        seen.seek(0)
        if len(seen.read()) != int(nth or 1):
            return None
    try:
        marker.rename(marker.with_suffix(".hit"))
    except OSError:
        return None  # another invocation took it
    time.sleep(float(os.environ.get("WPSIM_PAUSE_SECONDS", "3")))
    return marker


def run_command(args: Args) -> int:
    try:
        if not args.words:
            error("Please specify a command.")
        check_parameters(args)
        group = args.words[0]
        if group == "cli":
            cmd_cli(None, args)
            return 0
        site = Site(Path(args.get("path") or os.getcwd()))
        handlers: dict[str, Any] = {
            "core": cmd_core, "db": cmd_db, "maintenance-mode": cmd_maintenance, "option": cmd_option,
            "transient": cmd_transient, "sqlite": cmd_sqlite, "config": cmd_config, "cron": cmd_cron,
            "search-replace": cmd_search_replace, "rewrite": cmd_rewrite, "cache": cmd_cache,
            "post": cmd_content, "user": cmd_content, "comment": cmd_content,
            "plugin": lambda s, a: cmd_extension(s, a, "plugin"), "theme": lambda s, a: cmd_extension(s, a, "theme")}
        handlers[group](site, args)
    except Exit as done:
        sys.stdout.flush()
        return done.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
