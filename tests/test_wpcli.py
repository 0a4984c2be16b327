import re

import pytest

from inventory.errors import HostileValueError, RemoteCommandError
from inventory.transport import CommandResult
from inventory.wpcli import WPCLI, error_message, is_fatal, parse_command, parse_json
from tests import transcripts
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


@pytest.mark.parametrize("index", [47, 56, 57, 253, 265])
def test_real_fatal_errors_exit_1_or_255_and_name_the_php_error(index: int) -> None:
    """Exit 1 with WordPress's fatal-error handler on (47, 253: a plugin; 265: a theme), 255 with it
    off (56) or for a fatal in wp-config.php (57): both are fatal errors, and the message is PHP's."""
    found = transcripts.row(index)
    result = CommandResult("wp plugin list", found["exit_code"], found["stdout"], found["stderr"])
    assert is_fatal(result)
    assert re.fullmatch(r"PHP fatal error: Uncaught Error: Call to undefined function \w+\(\) in .+:\d+", error_message(result))


@pytest.mark.parametrize(("index", "message"), [
    (70, "Parameter errors: unknown --format parameter"),  # the reason is on the next line
    (13, "/usr/bin/env: ‘mysqldump’: No such file or directory"),  # db export on an SQLite site
    (34, 'mariadb-dump: Got error: 2002: "Can\'t connect to local server through socket \'/run/mysqld/mysqld.sock\' (2)" '
         "when trying to connect"),  # a harmless Warning: line comes first
    (238, "No plugins updated."),  # a release whose PHP requirement is not met
    (174, "No plugins updated (1 failed)."),  # JSON mode still writes the Error: line
    (77, "Failed to get url 'https://wordpress.org/wordpress-6.5.5.zip': cURL error 6: Could not resolve host: "
         "wordpress.org."),
])
def test_real_failures_give_their_reason(index: int, message: str) -> None:
    found = transcripts.row(index)
    result = CommandResult("wp", found["exit_code"], found["stdout"], found["stderr"])
    assert found["exit_code"] != 0 and not is_fatal(result)
    assert error_message(result) == message


@pytest.mark.parametrize("index", [0, 3, 15, 83, 86])
def test_real_successes_are_not_failures(index: int) -> None:
    found = transcripts.row(index)
    assert not is_fatal(CommandResult("wp", found["exit_code"], found["stdout"], found["stderr"]))


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
