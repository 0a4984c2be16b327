from pathlib import Path

import pytest

from agent import config
from agent.cli import main
from agent.demo import CONTRACT

SITE = '''[[sites]]
name = "acme"
url = "https://acme.example/"
path = "/var/www/acme"
[sites.ssh]
host = "acme.example"
user = "deploy"
key = "keys/id_ed25519"
known_hosts = "keys/known_hosts"
[sites.rest]
user = "fleet"
password_env = "ACME_WP_APP_PASSWORD"
'''


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sites.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(config.ConfigError) as caught:
        config.load(write(tmp_path, text))
    return caught.value.problems


def test_valid_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, CONTRACT + SITE))
    site = loaded.site("acme")
    assert site.ssh is not None and site.ssh.key == tmp_path / "keys" / "id_ed25519"
    assert loaded.agent.state_dir == tmp_path / "state"
    assert site.contract.response_minutes == 60 and site.ssh.port == 22


def test_site_contract_overrides_defaults(tmp_path: Path) -> None:
    text = CONTRACT + SITE + '[sites.contract]\nhold = ["core", "woocommerce"]\nresponse_minutes = 30\n'
    site = config.load(write(tmp_path, text)).site("acme")
    assert site.contract.hold == ["core", "woocommerce"]
    assert site.contract.response_minutes == 30
    assert site.contract.support_hours == "08:00-16:30"


def test_problems_name_their_keys(tmp_path: Path) -> None:
    bad = SITE.replace('user = "deploy"', 'user = "deploy"\nport = 70000\nmax_sessions = 1')
    second = SITE.replace('name = "acme"', 'name = "Bad Name"').replace('path = "/var/www/acme"', 'path = "/var/$(id)"')
    found = problems(tmp_path, CONTRACT + bad + second)
    assert any(p.startswith("sites[0].ssh.port:") for p in found)
    assert any(p.startswith("sites[0].ssh.max_sessions:") for p in found)  # a site needs two channels
    assert any(p.startswith("sites[1].name:") for p in found)
    assert any(p.startswith("sites[1].path:") for p in found)


def test_unknown_keys_and_bad_contract_values(tmp_path: Path) -> None:
    text = CONTRACT.replace('support_hours = "08:00-16:30"', 'support_hours = "16:30-08:00"') + SITE.replace('path = "/var/www/acme"', 'path = "/var/www/acme"\ncolour = "red"')
    found = problems(tmp_path, text)
    assert "sites[0].colour: unknown key" in found
    assert any(p.startswith("sites[0].contract.support_hours:") for p in found)


def test_duplicate_names_and_webhook_without_url(tmp_path: Path) -> None:
    found = problems(tmp_path, '[tickets]\nsink = "webhook"\n' + CONTRACT + SITE + SITE)
    assert any("duplicate site name" in p for p in found)
    assert any(p.startswith("tickets:") and "url" in p for p in found)


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "[agent\n")
    assert len(found) == 1 and "invalid TOML" in found[0]


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, CONTRACT + SITE)
    monkeypatch.delenv("ACME_WP_APP_PASSWORD", raising=False)
    assert main(["--config", str(path), "check-config"]) == 2
    assert "sites[0].rest.password_env: environment variable ACME_WP_APP_PASSWORD is not set" in capsys.readouterr().err
    monkeypatch.setenv("ACME_WP_APP_PASSWORD", "abcd efgh")
    assert main(["--config", str(path), "check-config"]) == 0
    assert main(["--config", str(tmp_path / "missing.toml"), "check-config"]) == 2
    assert "no such config file" in capsys.readouterr().err
    path.write_text(CONTRACT + SITE.replace("22", "x").replace('user = "deploy"', 'user = "deploy"\nport = "x"'))
    assert main(["--config", str(path), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "sites[0].ssh.port:" in err and "Traceback" not in err


def test_config_found_through_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, CONTRACT + SITE.split("[sites.rest]")[0])
    monkeypatch.setenv("WPFLEET_CONFIG", str(path))
    assert main(["check-config"]) == 0


def test_secrets_are_only_env_names(tmp_path: Path) -> None:
    text = CONTRACT + SITE.replace('password_env = "ACME_WP_APP_PASSWORD"', 'password = "hunter2"')
    found = problems(tmp_path, text)
    assert "sites[0].rest.password: unknown key" in found


def test_unknown_holiday_country_is_refused_at_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, CONTRACT.replace('holidays = ["IR"', 'holidays = ["XX"') + SITE.split("[sites.rest]")[0])
    assert 'holidays = ["XX"' in path.read_text()
    assert main(["--config", str(path), "check-config"]) == 2
    assert "contract.holidays: 'XX' is not a country code the holidays package knows" in capsys.readouterr().err


@pytest.mark.parametrize(("url", "refused"), [
    ("http://acme.example/", True), ("http://10.0.0.5/", True), ("https://acme.example/", False),
    ("http://127.0.0.1:8080/", False), ("http://localhost/", False), ("http://[::1]/", False)])
def test_application_password_never_crosses_the_network_in_the_clear(tmp_path: Path, url: str, refused: bool) -> None:
    text = CONTRACT + SITE.replace('url = "https://acme.example/"', f'url = "{url}"')
    if refused:
        found = problems(tmp_path, text)
        assert [p for p in found if p.startswith("sites[0].rest:")] == [
            f"sites[0].rest: the application password would cross the network in the clear to {url}: "
            "use https (plain http only to a loopback host)"]
    else:
        assert config.load(write(tmp_path, text)).site("acme").rest is not None


def test_a_rest_url_of_its_own_is_checked_too(tmp_path: Path) -> None:
    text = CONTRACT + SITE + 'url = "http://api.acme.example/"\n'
    assert any(p.startswith("sites[0].rest:") for p in problems(tmp_path, text))


def test_health_pages_are_paths_on_the_site(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, CONTRACT + SITE)).agent.health_pages == ["/"]
    good = config.load(write(tmp_path, '[agent]\nhealth_pages = ["/", "/shop/"]\n' + CONTRACT + SITE))
    assert good.agent.health_pages == ["/", "/shop/"]
    found = problems(tmp_path, '[agent]\nhealth_pages = ["https://evil.example/"]\n' + CONTRACT + SITE)
    assert any(p.startswith("agent.health_pages:") for p in found)


def test_an_smtp_password_is_never_sent_in_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mail = ('[tickets]\nsink = "email"\nsmtp_host = "{host}"\nsmtp_starttls = false\nmail_from = "a@agency.example"\n'
            'mail_to = ["b@agency.example"]\nsmtp_user_env = "SMTP_USER"\nsmtp_password_env = "SMTP_PASSWORD"\n')
    found = problems(tmp_path, mail.format(host="mail.agency.example") + CONTRACT + SITE)
    assert len(found) == 1 and found[0].startswith("tickets:") and "in clear" in found[0]
    assert main(["--config", str(tmp_path / "sites.toml"), "check-config"]) == 2
    assert "smtp_starttls = false with a password" in capsys.readouterr().err
    config.load(write(tmp_path, mail.format(host="127.0.0.1") + CONTRACT + SITE))  # a relay on this machine
    no_password = mail.format(host="mail.agency.example").replace('smtp_password_env = "SMTP_PASSWORD"\n', "")
    config.load(write(tmp_path, no_password + CONTRACT + SITE))  # nothing secret to send
