"""Reading a site, against the real WP-CLI 2.12.0 outputs in tests/data/wpcli."""

import json

import pytest

from inventory.collect import SiteReadError, collect
from inventory.errors import WPCLIFatalError
from inventory.wpcli import WPCLI
from tests import transcripts
from tests.fakes import ScriptedTransport

FIELDS = "--fields=name,status,version,update,update_version --format=json"
TRANSIENT = "transient get update_plugins --network --format=json"
# No transcript holds this call; the shapes follow wp_update_plugins(): ``last_checked`` is saved
# before wordpress.org is asked, ``response``/``no_update`` only once it answered.
REACHED = (0, '{"last_checked":1795659668,"checked":{"hello.php":"1.7.2"},"response":{},"no_update":{},'
              '"translations":[]}', "")
OFFLINE = (0, '{"last_checked":1795659668}', "")
NOT_SET = (0, "", 'Warning: Transient with key "update_plugins" is not set.\n')
SITE_A = (4, 5, 6)  # WordPress 6.4.5 on SQLite: check-update, plugin and theme lists
SITE_B = (100, 101, 102, 103)  # 6.4.4 on MariaDB; acme-tools 1.0.0 with 2.0.0 and 1.1.0 published
SITE_B_UNAVAILABLE = (230, 231, 232)  # acme-tools 1.2.0 needs PHP 9.0
SITE_A_FATAL = (66, 67, 68)  # an active plugin fatals while WordPress boots
PHP_KEY = '-r echo PHP_VERSION, "\\n";'  # ``php -r``: the PHP that runs WP-CLI


def host(path: str, core: str, php: tuple[int, str, str] = (0, "8.2.36\n", "")) -> dict[str, tuple[int, str, str]]:
    """The batch's two plain reads: wp-includes/version.php (what ``wp core version`` reads) and PHP's version."""
    version_php = f"<?php\n/**\n * The WordPress version string.\n */\n$wp_version = '{core}';\n$wp_db_version = 56657;\n"
    return {f"-- {path}/wp-includes/version.php": (0, version_php, ""), PHP_KEY: php}


def read(indexes: tuple[int, ...], transient: tuple[int, str, str] = REACHED, core: str = "6.4.5") -> tuple:
    steps = transcripts.script(*indexes) | host("/srv/wp/siteA", core) | {TRANSIENT: transient}
    transport = ScriptedTransport(script=steps)
    return collect("acme", WPCLI(transport, "/srv/wp/siteA")), transport


def test_sqlite_site_as_real_wp_cli_describes_it() -> None:
    inv, transport = read(SITE_A)
    assert inv.ok and inv.php == "8.2.36"
    assert inv.core is not None and inv.core.version == "6.4.5"
    assert [(o.version, o.type) for o in inv.core.updates] == [("6.5.5", "major")]
    plugins = {p.name: p for p in inv.plugins}
    assert (plugins["hello"].update_version, plugins["hello"].update_type) == ("1.7.3", "patch")
    assert plugins["sqlite-database-integration"].update_version is None
    assert (plugins["wpfleet-fake-wporg"].status, plugins["db.php"].status) == ("must-use", "dropin")
    assert plugins["db.php"].update_type is None
    assert [(t.name, t.version, t.update_version, t.update_type) for t in inv.themes] == [
        ("twentytwentyfour", "1.0", "1.2", "minor")]
    assert inv.update_source.reachable is True and inv.update_source.last_checked == "2026-11-26T02:21:08+00:00"
    wp_cli = [argv for argv in transport.seen if "wp" in argv]
    assert len(transport.seen) == 6 and len(wp_cli) == 4  # two plain reads, four WP-CLI processes


def test_newest_minor_comes_from_wp_cli_when_the_newest_is_a_major() -> None:
    """Without the agent's wordpress.org client (or for a slug it does not host): WP-CLI's own answer."""
    inv, transport = read(SITE_B, core="6.4.4")
    acme = next(p for p in inv.plugins if p.name == "acme-tools")
    assert (acme.update_version, acme.update_type) == ("2.0.0", "major")
    assert (acme.minor_update_version, acme.minor_update_type) == ("1.1.0", "minor")
    assert inv.core is not None and [(o.version, o.type) for o in inv.core.updates] == [
        ("6.5.5", "major"), ("6.4.5", "minor")]
    assert len(transport.seen) == 7


def test_an_unavailable_release_is_not_an_update() -> None:
    """WP-CLI lists a release whose PHP requirement is not met as ``unavailable``: it cannot be installed."""
    inv, _ = read(SITE_B_UNAVAILABLE, core="6.4.4")
    acme = next(p for p in inv.plugins if p.name == "acme-tools")
    assert acme.update_version is None and acme.update_type is None and acme.unavailable_version == "1.2.0"


@pytest.mark.parametrize(("transient", "reachable"), [(OFFLINE, False), (NOT_SET, None), (REACHED, True)])
def test_update_source_tells_offline_from_up_to_date(transient: tuple[int, str, str], reachable: bool | None) -> None:
    offline_lists = transcripts.script(205, 207, 208)  # wordpress.org unreachable: [] and "none" everywhere
    steps = host("/srv/wp/siteA", "6.4.5") | offline_lists | {TRANSIENT: transient}
    inv = collect("acme", WPCLI(ScriptedTransport(script=steps), "/srv/wp/siteA"))
    assert inv.core is not None and inv.core.updates == [] and all(p.update_version is None for p in inv.plugins)
    assert inv.update_source.reachable is reachable


def test_a_plugin_fatal_while_booting_is_a_fatal_error() -> None:
    """Real WP-CLI exits 1 (not 255) with WordPress's fatal-error handler on."""
    assert transcripts.row(66)["exit_code"] == 1
    with pytest.raises(WPCLIFatalError, match=r"PHP fatal error: Uncaught Error: Call to undefined function "
                                              r"wpfleet_undefined_boom\(\) in .*boom\.php:6"):
        read(SITE_A_FATAL)


def row(name: str, version: str, newest: str = "", status: str = "active") -> dict[str, object]:
    return {"name": name, "status": status, "update": "available" if newest else "none",
            "version": version, "update_version": newest}


def hostile(plugins: list[dict[str, object]], core: str = "6.5.3") -> dict[str, tuple[int, str, str]]:
    """Attack input a compromised site could send, in the shape of site A's real answers."""
    return transcripts.script(4, 6) | host("/srv/acme", core) | {f"plugin list {FIELDS}": (
        0, json.dumps(plugins), ""), TRANSIENT: REACHED}


@pytest.mark.parametrize("name", ["evil;rm -rf ~", "$(curl x)", "-rf", "a\nb", "../../etc", "`id`"])
def test_hostile_plugin_names_are_refused_and_reported(name: str) -> None:
    transport = ScriptedTransport(script=hostile([row(name, "1.0", "2.0"), row("akismet", "5.3.0", "5.3.2")]))
    inv = collect("acme", WPCLI(transport, "/srv/acme"))
    assert not inv.ok and inv.error is not None and "refused" in inv.error
    assert [p.name for p in inv.plugins] == ["akismet"]
    assert all(name not in " ".join(argv) for argv in transport.seen)


def test_hostile_version_from_site_is_refused() -> None:
    transport = ScriptedTransport(script=hostile([row("akismet", "5.3.0", "9.9;reboot")]))
    inv = collect("acme", WPCLI(transport, "/srv/acme"))
    assert not inv.ok and inv.plugins == []


def test_hostile_core_version_stops_the_site() -> None:
    transport = ScriptedTransport(script=hostile([], core="6.5$(id)"))
    with pytest.raises(SiteReadError):
        collect("acme", WPCLI(transport, "/srv/acme"))


def test_cached_core_offers_read_the_update_core_transient_as_wordpress_stores_it() -> None:
    """``wp_version_check`` stores each offer with a ``response``: "upgrade" (an offer), "autoupdate"
    (the minor the site would take by itself), "latest" (nothing newer); a dry run reads them from there."""
    from inventory.collect import cached_core_offers
    from inventory.transport import CommandResult

    stored = {"updates": [
        {"response": "upgrade", "download": "https://downloads.wordpress.org/release/wordpress-6.6.2.zip",
         "locale": "en_US", "current": "6.6.2", "version": "6.6.2", "php_version": "7.2.24", "mysql_version": "5.5.5",
         "new_bundled": "6.4", "partial_version": False},
        {"response": "autoupdate", "current": "6.5.5", "version": "6.5.5", "locale": "en_US"},
        {"response": "latest", "current": "6.5.3", "version": "6.5.3", "locale": "en_US"}],
        "last_checked": 1795651200, "version_checked": "6.5.3", "translations": []}
    result = cached_core_offers(CommandResult("wp transient get update_core --network --format=json", 0,
                                              json.dumps(stored) + "\n", ""))
    assert json.loads(result.stdout) == [{"version": "6.6.2", "update_type": ""}, {"version": "6.5.5", "update_type": ""}]
    # WP-CLI warns and exits 0 when the transient is not set (WordPress never asked wordpress.org)
    unset = CommandResult("wp transient get update_core --network --format=json", 0, "",
                          'Warning: Transient with key "update_core" is not set.\n')
    assert json.loads(cached_core_offers(unset).stdout) == []



@pytest.mark.parametrize("text", [
    "<?php\n/**\n * @global string $wp_version\n */\n$wp_version = '6.5.5';\n",
    "<?php\n $wp_version = '6.5.5'; $wp_db_version = 57155; $tinymce_version = '49110-20201110';",  # a minified build
])
def test_core_version_is_read_from_version_php_as_wp_cli_reads_it(text: str) -> None:
    from inventory.collect import read_version_file
    from inventory.transport import CommandResult

    assert read_version_file(CommandResult("cat", 0, text, "")).stdout == "6.5.5\n"
    with pytest.raises(SiteReadError, match="does not seem to be a WordPress installation"):
        read_version_file(CommandResult("cat", 1, "", "cat: version.php: No such file or directory"))
