"""The check-up as pages: HTML (self-contained: inline CSS and SVG charts), PDF through WeasyPrint,
in English or Persian (right to left, Jalali dates beside Gregorian, Persian digits), and the fleet
overview linking every site's report. Templates are Jinja2; charts are pygal's SVG.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pygal
from jinja2 import Environment, PackageLoader, select_autoescape
from pygal.style import Style

from agent import persian
from agent.checkup import ADVICE, LABELS, Report

_SCRIPT = re.compile(r"<script.*?</script>", re.DOTALL)
log = logging.getLogger(__name__)
CHART_STYLE = Style(background="white", plot_background="white", colors=("#2271b1", "#d63638", "#00a32a"),
                    font_family="DejaVu Sans, sans-serif")

EN: dict[str, Any] = {
    "lang": "en", "dir": "ltr", "font": '"DejaVu Sans", Arial, sans-serif',
    "title": "Technical check-up", "period": "Period", "generated": "Generated", "status": "Status",
    "certificate": "TLS certificate until", "key_pages": "Key pages, as a visitor sees them",
    "uptime": "Uptime", "incidents": "Incidents", "tickets": "Tickets", "met": "met", "missed": "missed",
    "backups": "Backups", "newest": "newest", "build_phase": "build phase", "kept_until": "kept until",
    "checks": "State of the site", "check": "Check", "verdict": "Verdict",
    "detail": "Detail", "recommendations": "Recommendations", "history": "The period",
    "updates": "Updates", "date": "Date", "component": "Component", "change": "Change", "result": "Result",
    "overview": "Fleet check-up", "site": "Site", "report": "Report",
    "chart_uptime": "Uptime by day (%)", "chart_response": "Home page answer time by day (ms)",
    "chart_updates": "Updates by month",
    "verdicts": {"good": "good", "recommended": "recommended", "critical": "critical", "no_data": "no data"},
    "results": {"applied": "applied", "rolled_back": "rolled back", "gated": "gated"},
    "labels": LABELS, "advice": ADVICE,
}
FA: dict[str, Any] = {
    "lang": "fa", "dir": "rtl", "font": 'Nazli, Homa, "DejaVu Sans", sans-serif',
    "title": "بررسی فنی", "period": "دوره", "generated": "تاریخ تهیه", "status": "وضعیت",
    "certificate": "گواهی امنیتی تا", "key_pages": "صفحه‌های کلیدی، آن‌گونه که بازدیدکننده می‌بیند",
    "uptime": "زمان در دسترس بودن", "incidents": "رخدادها", "tickets": "تیکت‌ها", "met": "به‌موقع",
    "missed": "با تأخیر", "backups": "پشتیبان‌ها", "newest": "جدیدترین", "checks": "وضعیت سایت",
    "build_phase": "دوره ساخت", "kept_until": "نگهداری تا",
    "check": "بررسی", "verdict": "نتیجه", "detail": "جزئیات", "recommendations": "پیشنهادها",
    "history": "این دوره", "updates": "به‌روزرسانی‌ها", "date": "تاریخ", "component": "بخش", "change": "تغییر",
    "result": "نتیجه", "overview": "بررسی فنی همه سایت‌ها", "site": "سایت", "report": "گزارش",
    "chart_uptime": "در دسترس بودن روزانه (درصد)", "chart_response": "زمان پاسخ صفحه اصلی (میلی‌ثانیه)",
    "chart_updates": "به‌روزرسانی‌ها در هر ماه",
    "verdicts": {"good": "خوب", "recommended": "پیشنهادی", "critical": "بحرانی", "no_data": "بدون داده"},
    "results": {"applied": "اعمال شد", "rolled_back": "بازگردانده شد", "gated": "در انتظار"},
    "labels": {
        "wordpress_version": "نسخه وردپرس", "php_version": "نسخه PHP", "pending_minors": "به‌روزرسانی‌های جزئی معوق",
        "gated_majors": "به‌روزرسانی‌های اصلی در انتظار", "inactive_extensions": "افزونه‌ها و پوسته‌های بی‌استفاده",
        "debug_mode": "تنظیمات اشکال‌زدایی", "core_checksums": "سلامت فایل‌های هسته",
        "php_in_uploads": "فایل PHP در پوشه بارگذاری", "autoload_size": "گزینه‌های بارگذاری خودکار",
        "cron_overdue": "کارهای زمان‌بندی‌شده", "disk_space": "فضای دیسک", "vulnerabilities": "آسیب‌پذیری‌های شناخته‌شده",
        "backups": "پشتیبان‌ها", "restore_proof": "آزمون بازیابی", "uptime": "در دسترس بودن",
        "updates_reachable": "دسترسی به به‌روزرسانی‌ها",
        "plugin_standing": "نگهداری افزونه‌ها",
    },
    "advice": {
        "wordpress_version": "انتقال به شاخه جاری وردپرس را برنامه‌ریزی کنید.",
        "php_version": "پیش از پایان پشتیبانی امنیتی، PHP را ارتقا دهید.",
        "pending_minors": "به‌روزرسانی‌های جزئی معوق را همین حالا اعمال کنید.",
        "gated_majors": "به‌روزرسانی‌های اصلی را برای بازه سالانه زمان‌بندی کنید.",
        "inactive_extensions": "افزونه‌ها و پوسته‌های بی‌استفاده را حذف کنید.",
        "debug_mode": "WP_DEBUG و SAVEQUERIES را در سایت اصلی خاموش کنید.",
        "core_checksums": "فایل‌های تغییرکرده وردپرس را بررسی و هسته را دوباره نصب کنید.",
        "php_in_uploads": "فایل‌های PHP را از پوشه بارگذاری حذف و اجرای PHP را آنجا مسدود کنید.",
        "autoload_size": "گزینه‌های بارگذاری خودکار را کم کنید؛ همه صفحه‌ها را کند می‌کنند.",
        "cron_overdue": "یک cron واقعی راه‌اندازی کنید؛ کارهای زمان‌بندی‌شده دیر اجرا می‌شوند.",
        "disk_space": "پیش از شکست پشتیبان‌گیری، فضای دیسک را آزاد یا بیشتر کنید.",
        "vulnerabilities": "برای آسیب‌پذیری‌های شناخته‌شده اقدام کنید: نسخه‌های اصلی رفع‌کننده را تأیید و آنچه اصلاحیه ندارد را جایگزین کنید.",
        "backups": "برنامه پشتیبان‌گیری را بررسی کنید؛ جدیدترین پشتیبان قدیمی است یا وجود ندارد.",
        "restore_proof": "بازیابی از جدیدترین پشتیبان را آزمایش کنید.",
        "uptime": "قطعی‌های این دوره را بررسی کنید.",
        "updates_reachable": "دسترسی سایت به api.wordpress.org را برقرار کنید.",
        "plugin_standing": "افزونه‌هایی را که wordpress.org بسته یا دیگر نگهداری نمی‌شوند جایگزین کنید.",
    },
}
TEXTS = {"en": EN, "fa": FA}


@dataclass
class Pages:
    lang: str

    @property
    def texts(self) -> dict[str, Any]:
        return TEXTS[self.lang]

    def number(self, value: object) -> str:
        return persian.number(value, self.lang)

    def day(self, iso: str) -> str:
        """A date as the reader reads it: Persian shows the Jalali date beside the Gregorian one."""
        if self.lang != "fa":
            return iso
        return f"{self.number(persian.jalali(date.fromisoformat(iso)))} ({self.number(iso)})"

    def environment(self) -> Environment:
        env = Environment(loader=PackageLoader("agent", "templates"), autoescape=select_autoescape(["j2", "html"]))
        env.globals.update(t=self.texts, n=self.number, d=self.day)
        return env

    def report_html(self, report: Report) -> str:
        advice = [self.texts["advice"][c.id] for c in report.checks
                  if c.status in ("critical", "recommended") and c.id in self.texts["advice"]]
        return self.environment().get_template("checkup.html.j2").render(
            report=report, charts=self.charts(report), advice=advice)

    def overview_html(self, reports: list[dict[str, Any]], generated: str) -> str:
        return self.environment().get_template("overview.html.j2").render(reports=reports, generated=generated)

    def charts(self, report: Report) -> dict[str, str]:
        days = report.days
        labels = [self.day(d["day"]) if self.lang != "fa" else self.number(persian.jalali(date.fromisoformat(d["day"])))
                  for d in days]
        uptime = self._chart(pygal.Bar, self.texts["chart_uptime"], labels, range_=(0, 100))
        uptime.add(self.texts["uptime"], [d["percent"] for d in days])
        response = self._chart(pygal.Line, self.texts["chart_response"], labels)
        response.add("ms", [d["answer_ms"] for d in days])
        months = Counter(u["at"][:7] for u in report.updates if u["result"] == "applied")
        updates = self._chart(pygal.Bar, self.texts["chart_updates"], [self.number(m) for m in sorted(months)])
        updates.add(self.texts["updates"], [months[m] for m in sorted(months)])
        return {"uptime": self._svg(uptime), "response": self._svg(response), "updates": self._svg(updates)}

    def _chart(self, kind: Any, title: str, labels: list[str], range_: tuple[int, int] | None = None) -> Any:
        chart = kind(title=title, style=CHART_STYLE, show_legend=False, width=800, height=300, js=[],
                     disable_xml_declaration=True, x_label_rotation=30, no_data_text=self.texts["verdicts"]["no_data"],
                     range=range_, print_values=False)
        chart.x_labels = labels
        return chart

    def _svg(self, chart: Any) -> str:
        return svg(chart)


def svg(chart: Any) -> str:
    """A pygal chart's SVG without pygal's tooltip script: the page stays static and self-contained."""
    return _SCRIPT.sub("", str(chart.render(is_unicode=True)))


def write(report: Report, folder: Path, lang: str, pdf: bool) -> Report:
    """The report's HTML (and PDF) in ``folder``; their paths are set in ``report.files``."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = Pages(lang)
    html = pages.report_html(report)
    html_path = folder / f"{report.site}.html"
    html_path.write_text(html, encoding="utf-8")
    report.files["html"] = str(html_path)
    if pdf and pdf_available():
        from weasyprint import HTML

        pdf_path = folder / f"{report.site}.pdf"
        HTML(string=html, base_url=str(folder)).write_pdf(pdf_path)
        report.files["pdf"] = str(pdf_path)
    elif pdf:
        log.warning("%s: no PDF: WeasyPrint needs Pango (Debian: libpango-1.0-0 libpangoft2-1.0-0)", report.site)
    return report


def pdf_available() -> bool:
    """WeasyPrint loads the system's Pango when imported; a machine without it gets HTML only."""
    try:
        import weasyprint  # noqa: F401
    except OSError:
        return False
    return True


def write_overview(reports: list[Report], folder: Path, lang: str, generated: str) -> Path:
    rows = [{"site": r.site, "status": r.status, "uptime": r.uptime,
             "files": {"html_name": Path(r.files["html"] or "").name, "pdf": r.files["pdf"],
                       "pdf_name": Path(r.files["pdf"] or "").name}} for r in reports]
    path = folder / "index.html"
    path.write_text(Pages(lang).overview_html(rows, generated), encoding="utf-8")
    return path
