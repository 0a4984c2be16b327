import json

import pytest

from inventory.collect import SiteReadError, collect
from inventory.wpcli import WPCLI
from tests.fakes import ScriptedTransport

FIELDS = "--fields=name,status,version,update,update_version --format=json"  # noqa: E501
CLI_INFO = json.dumps({"php_version": "8.2.20", "wp_cli_version": "2.11.0"})


def script(plugins: list[dict[str, object]], themes: list[dict[str, object]] | None = None,
           core: str = "6.5.3", offers: str = "[]") -> dict[str, tuple[int, str, str]]:
    return {
        "cli info --format=json": (0, CLI_INFO, ""),
        "core version": (0, core + "\n", ""),
        "core check-update --format=json": (0, offers, ""),
        f"plugin list {FIELDS}": (0, json.dumps(plugins), ""),
        f"theme list {FIELDS}": (0, json.dumps(themes or []), ""),
    }


def row(name: str, version: str, newest: str = "", status: str = "active") -> dict[str, object]:
    return {"name": name, "status": status, "update": "available" if newest else "none",
            "version": version, "update_version": newest}


def test_core_offers_typed_in_wordpress_words() -> None:
    offers = '[{"version":"6.5.5","update_type":"minor","package_url":""},{"version":"6.6.2","update_type":"major","package_url":""}]'
    transport = ScriptedTransport(script=script([], offers=offers))
    inv = collect("acme", WPCLI(transport, "/srv/acme"))
    assert inv.ok and inv.php == "8.2.20"
    assert inv.core is not None and inv.core.version == "6.5.3"
    assert inv.core.update is not None and (inv.core.update.version, inv.core.update.type) == ("6.6.2", "major")
    assert [(o.version, o.type) for o in inv.core.updates] == [("6.6.2", "major"), ("6.5.5", "minor")]
    assert len(transport.seen) == 5


def test_newest_minor_is_asked_only_when_a_major_is_pending() -> None:
    steps = script([row("akismet", "5.3.0", "6.0.0"), row("hello", "1.7.2")])
    steps["plugin update akismet --minor --dry-run --format=json"] = (
        0, '[{"name":"akismet","status":"active","version":"5.3.0","update_version":"5.4.0"}]', "")
    transport = ScriptedTransport(script=steps)
    inv = collect("acme", WPCLI(transport, "/srv/acme"))
    akismet = inv.plugins[0]
    assert (akismet.update_version, akismet.update_type) == ("6.0.0", "major")
    assert (akismet.minor_update_version, akismet.minor_update_type) == ("5.4.0", "minor")
    assert inv.plugins[1].update_version is None and inv.plugins[1].update_type is None
    assert len(transport.seen) == 6


@pytest.mark.parametrize("name", ["evil;rm -rf ~", "$(curl x)", "-rf", "a\nb", "../../etc", "`id`"])
def test_hostile_plugin_names_are_refused_and_reported(name: str) -> None:
    transport = ScriptedTransport(script=script([row(name, "1.0", "2.0"), row("akismet", "5.3.0", "5.3.2")]))
    inv = collect("acme", WPCLI(transport, "/srv/acme"))
    assert not inv.ok and inv.error is not None and "refused" in inv.error
    assert [p.name for p in inv.plugins] == ["akismet"]
    assert all(name not in " ".join(argv) for argv in transport.seen)


def test_hostile_version_from_site_is_refused() -> None:
    transport = ScriptedTransport(script=script([row("akismet", "5.3.0", "9.9;reboot")]))
    inv = collect("acme", WPCLI(transport, "/srv/acme"))
    assert not inv.ok and inv.plugins == []


def test_hostile_core_version_stops_the_site() -> None:
    transport = ScriptedTransport(script=script([], core="6.5$(id)"))
    with pytest.raises(SiteReadError):
        collect("acme", WPCLI(transport, "/srv/acme"))


def test_mu_plugins_and_dropins_carry_no_update() -> None:
    plugins = [row("loader", "", status="must-use") | {"update": False}, row("db.php", "", status="dropin") | {"update": False}]
    inv = collect("acme", WPCLI(ScriptedTransport(script=script(plugins)), "/srv/acme"))
    assert inv.ok and [(p.status, p.update_type) for p in inv.plugins] == [("must-use", None), ("dropin", None)]
