import pytest

from inventory.errors import HostileValueError, RemoteCommandError, WPCLIFatalError
from inventory.transport import CommandResult
from inventory.wpcli import WPCLI, error_message, parse_command, parse_json
from tests.fakes import ScriptedTransport, UnexpectedCommand

PLUGINS = '[{"name":"akismet","status":"active","update":"available","version":"5.3.0","update_version":"6.0.0"}]'


def wp(script: dict[str, tuple[int, str, str]]) -> tuple[WPCLI, ScriptedTransport]:
    transport = ScriptedTransport(script=script)
    return WPCLI(transport, "/var/www/acme", ["wp"]), transport


def test_every_call_has_path_no_color_and_automation_env() -> None:
    client, transport = wp({"core version": (0, "6.5.3\n", "")})
    assert client.text("core", "version") == "6.5.3"
    argv = transport.seen[0]
    assert argv[:3] == ["env", "WP_CLI_ERROR_RERUN=no", "WP_CLI_DISABLE_AUTO_CHECK_UPDATE=1"]
    assert "--path=/var/www/acme" in argv and "--no-color" in argv


def test_json_with_escaped_slashes_and_no_trailing_newline() -> None:
    assert parse_json('[{"url":"https:\\/\\/x.example\\/"}]') == [{"url": "https://x.example/"}]


def test_php_notices_before_json_are_skipped() -> None:
    noisy = "\nNotice: Undefined variable $x in /w/p.php on line 3\nPHP Warning:  foo[bar] in x\n" + PLUGINS
    assert parse_json(noisy)[0]["name"] == "akismet"


def test_quiet_json_mode_with_nothing_to_do_prints_nothing() -> None:
    assert parse_json("") == []


def test_output_without_json_is_an_error() -> None:
    with pytest.raises(ValueError, match="no JSON"):
        parse_json("Success: All plugins are up to date.")


def test_error_line_becomes_the_message() -> None:
    client, _ = wp({"plugin list --format=json": (
        1, "", "Error: This does not seem to be a WordPress installation.\nPass --path=`path/to/wordpress`\n")})
    with pytest.raises(RemoteCommandError) as caught:
        client.json("plugin", "list")
    assert str(caught.value) == "This does not seem to be a WordPress installation."
    assert caught.value.exit_code == 1 and "--path=/var/www/acme" in caught.value.command


def test_fatal_error_exit_255() -> None:
    stderr = ("PHP Fatal error:  Uncaught Error: Call to undefined function boom() in /w/p.php:3\n"
              "Error: There has been a critical error on this website.")
    client, _ = wp({"plugin list --format=json": (255, "", stderr)})
    with pytest.raises(WPCLIFatalError, match="critical error"):
        client.json("plugin", "list")


def test_failure_in_json_quiet_mode_has_empty_stderr() -> None:
    client, _ = wp({"plugin update akismet --format=json": (1, '[{"name":"akismet","status":"Error"}]', "")})
    result = client.run("plugin", "update", "akismet", "--format=json")
    assert result.exit_code == 1 and error_message(result).startswith("[{")
    assert error_message(CommandResult("wp x", 1, "", "")) == "exit code 1"


def test_hostile_argument_never_reaches_the_transport() -> None:
    client, transport = wp({})
    with pytest.raises(HostileValueError):
        client.run("plugin", "update", "x;rm -rf /")
    assert transport.seen == []


def test_unscripted_commands_fail_loudly() -> None:
    client, _ = wp({})
    with pytest.raises(UnexpectedCommand):
        client.run("core", "version")


def test_configured_command_words_are_validated() -> None:
    assert parse_command("php /opt/wp-cli.phar") == ["php", "/opt/wp-cli.phar"]
    with pytest.raises(HostileValueError):
        parse_command("wp; reboot")
