from datetime import date

import pytest

from agent.config import SiteConfig
from agent.policy import SiteHistory, contract_year, major_window, plan_site, to_apply

BASE = {"support_start": "2026-03-01", "support_until": "2028-02-28", "major_window_start": "03-01",
        "major_window_days": 30}
INVENTORY = {
    "core": {"version": "6.5.3", "updates": [{"version": "6.6.2", "type": "major"}, {"version": "6.5.5", "type": "minor"}]},
    "plugins": [
        {"name": "akismet", "version": "5.3.0", "update_version": "6.0.0", "update_type": "major",
         "minor_update_version": "5.4.0", "minor_update_type": "minor"},
        {"name": "contact-form-7", "version": "5.9.3", "update_version": "5.9.8", "update_type": "patch"},
        {"name": "woocommerce", "version": "8.0.0", "update_version": "8.1.0", "update_type": "minor"},
    ],
    "themes": [{"name": "twentytwentyfour", "version": "1.1", "update_version": "1.2", "update_type": "minor"}],
}


def site(**contract: object) -> SiteConfig:
    return SiteConfig.model_validate({"name": "acme", "url": "https://acme.example/", "path": "/var/www/acme",
                                      "contract": BASE | contract})


def actions(items: list) -> dict[tuple[str, str], tuple[str, str | None]]:
    return {(i.name, i.to_version): (i.action, i.due.isoformat() if i.due else None) for i in items}


def test_minors_apply_majors_gated_outside_the_window() -> None:
    items = plan_site(site(), INVENTORY, date(2026, 11, 24), SiteHistory())
    assert actions(items) == {
        ("core", "6.5.5"): ("apply", None), ("core", "6.6.2"): ("gated", "2027-03-01"),
        ("akismet", "5.4.0"): ("apply", None), ("akismet", "6.0.0"): ("gated", "2027-03-01"),
        ("contact-form-7", "5.9.8"): ("apply", None), ("woocommerce", "8.1.0"): ("apply", None),
        ("twentytwentyfour", "1.2"): ("apply", None),
    }
    assert [i.kind for i in items] == ["core", "core", "plugin", "plugin", "plugin", "plugin", "theme"]
    gated = next(i for i in items if i.to_version == "6.6.2")
    assert "window opens on 2027-03-01" in gated.reason and gated.public()["due"] == "2027-03-01"


def test_majors_apply_inside_the_window_once_a_contract_year() -> None:
    inside = date(2027, 3, 10)
    items = plan_site(site(), INVENTORY, inside, SiteHistory())
    assert actions(items)[("akismet", "6.0.0")] == ("apply", None)
    assert [(i.name, i.to_version) for i in to_apply(items)][:2] == [("core", "6.6.2"), ("akismet", "6.0.0")]
    after_run = plan_site(site(), INVENTORY, inside, SiteHistory(major_runs=(date(2027, 3, 2),)))
    # the next window (2028-03-01) opens after support ends (2028-02-28): gated with no due date
    assert actions(after_run)[("akismet", "6.0.0")] == ("gated", None)
    longer = plan_site(site(support_until="2029-12-31"), INVENTORY, inside, SiteHistory(major_runs=(date(2027, 3, 2),)))
    gated = next(i for i in longer if i.to_version == "6.0.0")
    assert (gated.action, gated.due) == ("gated", date(2028, 3, 1)) and "major run was on 2027-03-02" in gated.reason
    # a run in the previous contract year does not count
    assert actions(plan_site(site(), INVENTORY, inside, SiteHistory(major_runs=(date(2027, 2, 20),))))[
        ("akismet", "6.0.0")] == ("apply", None)


def test_next_window_after_support_ends_has_no_due_date() -> None:
    items = plan_site(site(support_until="2027-02-28"), INVENTORY, date(2026, 11, 24), SiteHistory())
    gated = next(i for i in items if i.to_version == "6.0.0")
    assert gated.action == "gated" and gated.due is None and "support ends" in gated.reason


def test_hold_and_end_of_support() -> None:
    held = actions(plan_site(site(hold=["core", "woocommerce"]), INVENTORY, date(2026, 11, 24), SiteHistory()))
    assert held[("core", "6.5.5")][0] == "held" and held[("woocommerce", "8.1.0")][0] == "held"
    assert held[("contact-form-7", "5.9.8")][0] == "apply"
    ended = plan_site(site(support_until="2026-10-31"), INVENTORY, date(2026, 11, 24), SiteHistory())
    assert {i.action for i in ended} == {"held"} and "inventory only" in ended[0].reason


def test_failed_release_is_held_until_a_newer_one() -> None:
    history = SiteHistory(failed_releases=frozenset({("plugin", "contact-form-7", "5.9.8")}))
    items = actions(plan_site(site(), INVENTORY, date(2026, 11, 24), history))
    assert items[("contact-form-7", "5.9.8")][0] == "held"
    newer = INVENTORY | {"plugins": [{"name": "contact-form-7", "version": "5.9.3", "update_version": "5.9.9",
                                      "update_type": "patch"}]}
    assert actions(plan_site(site(), newer, date(2026, 11, 24), history))[("contact-form-7", "5.9.9")][0] == "apply"


def test_admin_forced_majors_apply_now() -> None:
    items = plan_site(site(), INVENTORY, date(2026, 11, 24), SiteHistory(), force_major=True)
    assert actions(items)[("akismet", "6.0.0")] == ("apply", None)
    assert [i.to_version for i in to_apply(items) if i.name == "akismet"] == ["6.0.0"]


@pytest.mark.parametrize(("start", "window", "day", "year_start", "opens"), [
    ("2026-03-01", "03-01", "2026-11-24", "2026-03-01", "2026-03-01"),
    ("2026-03-01", "03-01", "2027-02-28", "2026-03-01", "2026-03-01"),
    ("2026-03-01", "01-15", "2026-11-24", "2026-03-01", "2027-01-15"),  # window late in the contract year
    ("2024-02-29", "02-29", "2027-03-01", "2027-02-28", "2027-02-28"),   # leap-day contracts
    ("2026-07-01", "09-01", "2026-06-30", "2025-07-01", "2025-09-01"),
])
def test_contract_years_and_windows(start: str, window: str, day: str, year_start: str, opens: str) -> None:
    contract = site(support_start=start, major_window_start=window, support_until="2030-01-01").contract
    year = contract_year(contract, date.fromisoformat(day))
    assert year.start == date.fromisoformat(year_start)
    assert major_window(contract, year)[0] == date.fromisoformat(opens)
