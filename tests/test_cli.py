import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load


def test_demo_builds_a_fleet_and_inventories_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["site"] for r in result] == ["acme", "bakery", "clinic"]
    acme = result[0]
    assert acme["core"]["updates"] == [{"version": "6.6.2", "type": "major"}, {"version": "6.5.5", "type": "minor"}]
    assert {p["name"]: p["update_type"] for p in acme["plugins"]} == {"akismet": "major", "contact-form-7": "patch"}
    assert load(tmp_path / "sites.toml").sites[0].is_local


def test_json_output_is_one_document_and_logs_go_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo", "--dir", str(tmp_path)])
    capsys.readouterr()
    assert main(["--config", str(tmp_path / "sites.toml"), "inventory", "--json", "--site", "clinic"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["site"] == "clinic"
    assert "[1/1] clinic: ok" in captured.err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert main(["inventory", "--bogus"]) == 2
    assert "wpfleet:" in capsys.readouterr().err


def test_sites_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[1] / "sites.example.toml"
    config = load(example)
    assert config.sites and config.tickets.sink in ("webhook", "email", "file")
