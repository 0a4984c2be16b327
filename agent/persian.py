"""Persian as the agency's clients read it, on the check-up and the dashboard alike: Persian digits
and the Jalali calendar (with ``checkup_lang = "fa"``)."""

from __future__ import annotations

from datetime import date

import jdatetime

DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def number(value: object, lang: str) -> str:
    """``value`` as text, with Persian digits when the page is in Persian."""
    text = str(value)
    return text.translate(DIGITS) if lang == "fa" else text


def jalali(day: date) -> str:
    """The Jalali date of ``day``, as 1405/09/14 (Western digits: ``number`` turns them)."""
    return str(jdatetime.date.fromgregorian(date=day).strftime("%Y/%m/%d"))
