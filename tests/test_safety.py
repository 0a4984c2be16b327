import pytest

from inventory import safety
from inventory.errors import HostileValueError

HOSTILE = ["a;rm -rf /", "$(id)", "`id`", "a\nb", "-rf", "--path=/", "../etc", "a/../b", "a b", "a|b",
           "a&b", "a>b", "", "a'b", 'a"b', "a\\b", "a\x00b"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_slugs_are_refused(value: str) -> None:
    with pytest.raises(HostileValueError):
        safety.slug(value)


@pytest.mark.parametrize("value", HOSTILE + ["1.0;", "1..2", "1.0$(x)"])
def test_hostile_versions_are_refused(value: str) -> None:
    with pytest.raises(HostileValueError):
        safety.version(value)


@pytest.mark.parametrize("value", ["relative/path", "/var/www/../etc", "/var/www/$(id)", "/a b", "/a;b", "/a/./b", "/a/.."])
def test_hostile_paths_are_refused(value: str) -> None:
    with pytest.raises(HostileValueError):
        safety.remote_path(value)


@pytest.mark.parametrize("value", ["akismet", "contact-form-7", "hello", "db.php", "foo/bar", "Woo_Commerce"])
def test_ordinary_slugs_pass(value: str) -> None:
    assert safety.slug(value) == value


@pytest.mark.parametrize("value", ["6.5.5", "1.0-beta2", "2024.1", "5.9.8", "1.2.3.4", "6.7-RC1"])
def test_ordinary_versions_pass(value: str) -> None:
    assert safety.version(value) == value


def test_join_quotes_every_argument() -> None:
    assert safety.join(["wp", "--path=/var/www/x", "a b"]) == "wp --path=/var/www/x 'a b'"
