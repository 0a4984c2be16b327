"""Pages judged as a visitor sees them: screenshots in a real browser before and after a change.

Before a site's change each health page is shot twice, ``NOISE_PAUSE`` seconds apart; whatever
differs between the two (a clock, a carousel, an advertisement) is the page's noise and is masked.
After the change the page is shot again and compared with the first shot outside the mask: when
more than the page's threshold of the pixels changed, the release broke the page as a visitor sees
it (a stylesheet gone, a header over the content, a blank page served with 200). A page may also
name what must be on it (a CSS selector, a text): present before the change and missing after it is
broken too.

The browser is Debian's Chromium, driven headless through Playwright (its Python wheel; no browser
is ever downloaded): one per agent, on an event loop of its own, its pages limited to
``visual_connections`` at once, each shot within its own deadline. What the browser could not load
is "cannot tell", never a verdict. Images are PNG files under the state folder; the comparison is
Pillow's (C code, a few milliseconds a page).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

from PIL import Image, ImageChops, ImageFilter

log = logging.getLogger(__name__)
VIEWPORT = (1280, 900)
SHOT_SECONDS = 30.0  # one page loaded and shot, at most
SETTLE_MS = 400  # after the load event: web fonts and late styles land
NOISE_PAUSE = 3.0  # seconds between the two shots of the baseline
PIXEL_TOLERANCE = 24  # a pixel whose brightness differs by less is the same (anti-aliasing, image codecs)
MASK_GROW = 15  # the noise mask grows this much around what moved (a clock's next digit, a carousel's edges)
DEFAULT_THRESHOLD = 0.02  # share of the page's unmasked pixels that may change
Result = TypeVar("Result")


@dataclass(frozen=True)
class PageSpec:
    """A health page and what a visitor must find on it."""

    path: str
    selector: str | None = None  # a CSS selector that must match something visible
    text: str | None = None  # a text the page must show
    threshold: float | None = None  # this page's share of changed pixels (else the agent's)


@dataclass
class Shot:
    png: bytes | None  # None: the browser could not show the page ("cannot tell")
    problem: str = ""
    found: dict[str, bool] = field(default_factory=dict)  # "selector" / "text" -> present


@dataclass(frozen=True)
class Comparison:
    changed: float  # share of the unmasked pixels that changed
    masked: float  # share of the page masked as noise
    diff: bytes  # the after image, what changed in red, the mask tinted blue


class Browser:
    """One headless Chromium for the agent, on a thread and event loop of its own."""

    def __init__(self, executable: str, connections: int = 4):
        self.executable = executable
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="visual-loop", daemon=True)
        self.thread.start()
        self.pages = asyncio.Semaphore(connections)
        self._driver: Any = None
        self._browser: Any = None
        self._call(self._start())

    @classmethod
    def find(cls, connections: int = 4) -> Browser | None:
        """The system's Chromium, started; None (said once, by the caller) when there is none."""
        executable = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if executable is None:
            return None
        try:
            return cls(executable, connections)
        except Exception as exc:  # noqa: BLE001 - no browser is a reason to skip visual checks, said by the caller
            log.error("visual checks: Chromium at %s does not start: %s", executable, exc)
            return None

    async def _start(self) -> None:
        from playwright.async_api import async_playwright

        self._driver = await async_playwright().start()
        args = ["--disable-gpu", "--hide-scrollbars", "--disable-background-networking", "--disable-component-update",
                "--font-render-hinting=none"] + (["--no-sandbox"] if os.geteuid() == 0 else [])
        self._browser = await self._driver.chromium.launch(executable_path=self.executable, args=args, headless=True)

    def shoot(self, url: str, spec: PageSpec | None = None, deadline: float = SHOT_SECONDS) -> Shot:
        return self._call(self._shoot(url, spec, deadline))

    def shoot_all(self, urls: list[tuple[str, PageSpec | None]], deadline: float = SHOT_SECONDS) -> list[Shot]:
        """Several pages at once (within the pool's limit)."""
        async def every() -> list[Shot]:
            return list(await asyncio.gather(*(self._shoot(url, spec, deadline) for url, spec in urls)))
        return self._call(every())

    async def _shoot(self, url: str, spec: PageSpec | None, deadline: float) -> Shot:
        async with self.pages:
            context = await self._browser.new_context(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]},
                                                      service_workers="block")
            try:
                return await asyncio.wait_for(self._load(context, url, spec, deadline), deadline + 5)
            except TimeoutError:
                return Shot(None, f"cannot tell: the browser did not show {url} within {deadline:.0f} s")
            except Exception as exc:  # noqa: BLE001 - anything the browser says is "cannot tell", never a verdict
                return Shot(None, f"cannot tell: the browser could not show {url}: {_first_line(exc)}")
            finally:
                await context.close()

    async def _load(self, context: Any, url: str, spec: PageSpec | None, deadline: float) -> Shot:
        page = await context.new_page()
        answer = await page.goto(url, wait_until="load", timeout=deadline * 1000)
        if answer is None:
            return Shot(None, f"cannot tell: no answer for {url}")
        await page.wait_for_timeout(SETTLE_MS)
        png = await page.screenshot(animations="disabled", caret="hide", timeout=deadline * 1000)
        found: dict[str, bool] = {}
        if spec is not None and spec.selector:
            found["selector"] = await page.locator(spec.selector).first.is_visible()
        if spec is not None and spec.text:
            found["text"] = spec.text in await page.inner_text("body")
        return Shot(png, "", found)

    def close(self) -> None:
        async def stop() -> None:
            if self._browser is not None:
                await self._browser.close()
            if self._driver is not None:
                await self._driver.stop()
        try:
            self._call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    def _call(self, work: Coroutine[Any, Any, Result]) -> Result:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()


def compare(first: bytes, second: bytes, after: bytes, again: bytes | None = None) -> Comparison:
    """``after`` against ``first``, outside what moved between ``first`` and ``second`` — and, when the page
    was shot ``again`` after the change, between the two after it (a carousel may show the same slide
    twice before and move only after)."""
    one = _image(first, None)
    two, now = _image(second, one.size), _image(after, one.size)
    noise = _differs(one, two)
    if again is not None:
        noise = ImageChops.lighter(noise, _differs(now, _image(again, one.size)))
    noise = noise.filter(ImageFilter.MaxFilter(MASK_GROW))
    changed = ImageChops.subtract(_differs(one, now), noise)  # 255 where it changed and is not noise
    total = one.size[0] * one.size[1]
    masked = noise.histogram()[255]
    counted = changed.histogram()[255]
    shown = Image.blend(now, Image.new("RGB", now.size, "white"), 0.6)
    shown.paste(Image.new("RGB", now.size, (80, 140, 255)), mask=noise.point(lambda v: 90 if v else 0))
    shown.paste(Image.new("RGB", now.size, (230, 0, 0)), mask=changed)
    out = BytesIO()
    shown.save(out, "PNG", optimize=True)
    return Comparison(counted / max(1, total - masked), masked / total, out.getvalue())


def _image(png: bytes, size: tuple[int, int] | None) -> Image.Image:
    made = Image.open(BytesIO(png)).convert("RGB")
    return made if size is None or made.size == size else made.resize(size)


def _differs(a: Image.Image, b: Image.Image) -> Image.Image:
    return ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > PIXEL_TOLERANCE else 0)


@dataclass
class Baseline:
    first: bytes
    second: bytes
    found: dict[str, bool]


class VisualCheck:
    """One site's visual check for one run: the baseline the first time it judges (before any change),
    a comparison with it each time after. Files go to ``folder``."""

    def __init__(self, browser: Browser, folder: Path, url: str, specs: list[PageSpec], threshold: float,
                 pause: float = NOISE_PAUSE):
        self.browser, self.folder, self.url = browser, folder, url
        self.specs = {spec.path: spec for spec in specs}
        self.threshold, self.pause = threshold, pause
        self.baseline: dict[str, Baseline] = {}
        self.shots = 0
        self.images: dict[str, dict[str, Any]] = {}  # path -> the files and figures of its last comparison

    def judge(self, paths: tuple[str, ...], checks: dict[str, str]) -> None:
        """Add each page's visual verdict (and its key flow's) to ``checks``; the first call takes the baseline."""
        if not self.baseline:
            self._take_baseline(paths)
            return
        wanted = [p for p in paths if p in self.baseline]
        shots = self.browser.shoot_all([(urljoin(self.url, p.lstrip("/")), self.specs.get(p)) for p in wanted])
        self.shots += 1
        for path, shot in zip(wanted, shots, strict=True):
            if shot.png is None:
                log.warning("visual check of %s: %s (not a verdict)", path, shot.problem)
                continue
            verdict = self._compare(path, shot.png)
            if verdict != "ok":  # looks different: shot again, so that what moves after the change is masked too
                time.sleep(self.pause)
                again = self.browser.shoot(urljoin(self.url, path.lstrip("/")), self.specs.get(path))
                if again.png is not None:
                    verdict = self._compare(path, shot.png, again.png)
            checks[f"visual {path}"] = verdict
            flow = self._flow(path, shot)
            if flow is not None:
                checks[f"flow {path}"] = flow

    def _take_baseline(self, paths: tuple[str, ...]) -> None:
        urls = [(urljoin(self.url, p.lstrip("/")), self.specs.get(p)) for p in paths]
        first = self.browser.shoot_all(urls)
        time.sleep(self.pause)
        second = self.browser.shoot_all(urls)
        self.folder.mkdir(parents=True, exist_ok=True)
        for path, one, two in zip(paths, first, second, strict=True):
            if one.png is None or two.png is None:
                log.warning("visual baseline of %s: %s; the page is judged without it", path,
                            one.problem or two.problem)
                continue
            self.baseline[path] = Baseline(one.png, two.png, two.found)
            (self.folder / f"{_slug(path)}-before.png").write_bytes(one.png)
            for what, present in two.found.items():
                if not present:
                    log.warning("%s: page %s shows no %s %r before any change: not checked after it", self.url, path,
                                what, getattr(self.specs[path], what))

    def _compare(self, path: str, after: bytes, again: bytes | None = None) -> str:
        held = self.baseline[path]
        made = compare(held.first, held.second, after, again)
        slug = _slug(path)
        n = self.shots
        files = {"before": self.folder / f"{slug}-before.png", "after": self.folder / f"{slug}-after-{n}.png",
                 "diff": self.folder / f"{slug}-diff-{n}.png"}
        files["after"].write_bytes(after)
        files["diff"].write_bytes(made.diff)
        spec = self.specs.get(path)
        threshold = spec.threshold if spec is not None and spec.threshold is not None else self.threshold
        self.images[path] = {"page": path, "changed": round(made.changed, 4), "masked": round(made.masked, 4),
                             "threshold": threshold, **{k: str(v) for k, v in files.items()}}
        if made.changed <= threshold:
            return "ok"
        return (f"{made.changed:.1%} of the page looks different (threshold {threshold:.1%}, "
                f"{made.masked:.1%} masked as moving)")

    def _flow(self, path: str, shot: Shot) -> str | None:
        spec = self.specs.get(path)
        if spec is None or not shot.found:
            return None
        before = self.baseline[path].found
        gone = [f"{what} {getattr(spec, what)!r}" for what, present in shot.found.items()
                if before.get(what) and not present]
        return "ok" if not gone else "missing after the change: " + ", ".join(gone)

    def failing_images(self, checks: dict[str, str]) -> list[dict[str, Any]]:
        """The images of the pages whose visual check (or flow) failed in ``checks``."""
        return [self.images[path] for path in self.images
                if checks.get(f"visual {path}", "ok") != "ok" or checks.get(f"flow {path}", "ok") != "ok"]


def thumbnail(png: bytes, width: int = 400) -> dict[str, Any]:
    """A screenshot made small, as a PNG data URI (a report stays one self-contained file)."""
    import base64

    image = Image.open(BytesIO(png)).convert("RGB")
    small = image.resize((width, round(image.size[1] * width / image.size[0])), Image.Resampling.LANCZOS)
    out = BytesIO()
    small.save(out, "PNG", optimize=True)
    return {"data": "data:image/png;base64," + base64.b64encode(out.getvalue()).decode(), "width": small.size[0],
            "height": small.size[1]}


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
